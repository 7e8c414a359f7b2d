"""A JSON Schema for manifests, derived from botocore's Batch model and the
envelope's pydantic models (never written by hand), for editors and CI.

``batch-gitops schema`` prints it. It mirrors :func:`controller.model.manifests.load_manifest`:
a document with ``apiVersion`` (or ``kind`` and ``spec``) is an envelope whose
``spec`` is the request of its ``kind``; otherwise ``jobDefinitionName`` makes
it a RegisterJobDefinition request and anything else a SubmitJob request. Every
structure is closed (``additionalProperties: false``), so an editor flags a
typo as you type; required members and the model's documentation (for hover
text) come from the same botocore shapes the controller validates against, and
every value rule (lengths, bounds, enums, patterns, the name pattern, the
reserved tag prefix) from :func:`controller.model.constraints.member_rules`, the
call ``validate`` makes: the two cannot drift
(``tests/model/test_schema_agreement.py``). Draft-07, the dialect VS Code's JSON and YAML
language servers both understand.
"""

from __future__ import annotations

import html
import re
from typing import Any

from botocore.model import Shape, StructureShape

from controller.model.constraints import Rule, member_rules
from controller.model.manifests import (
    API_VERSION,
    ENVELOPE_KIND,
    DefinitionOptions,
    JobOptions,
    Kind,
    input_shape,
)
from controller.model.schedule_rules import MAX_TEMPLATE_NAME

SCHEMA_ID = "https://batch-gitops.dev/schemas/manifest-v1.json"
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
# Hover text, not a manual: the first sentences of botocore's documentation.
_DOC_LIMIT = 400


def _description(shape: Shape) -> str:
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", shape.documentation or ""))).strip()
    if len(text) > _DOC_LIMIT:
        text = text[: _DOC_LIMIT - 1].rsplit(" ", 1)[0] + "…"
    return text


def _with_rules(base: dict[str, Any], rules: tuple[Rule, ...]) -> dict[str, Any]:
    """``base`` plus each rule's fragment; a keyword already set goes under allOf."""
    out = dict(base)
    extra: list[dict[str, Any]] = []
    for rule in rules:
        fragment = rule.schema()
        if any(key in out for key in fragment):
            extra.append(fragment)
        else:
            out.update(fragment)
    if extra:
        out["allOf"] = [*out.get("allOf", []), *extra]
    return out


class _ShapeWalker:
    """botocore shapes -> JSON Schema; each structure once, under ``definitions``.

    Every value rule comes from :func:`controller.model.constraints.member_rules`,
    the same call the runtime walk makes, so the schema and ``validate`` agree.
    """

    def __init__(self) -> None:
        self.definitions: dict[str, Any] = {}

    def schema(
        self,
        shape: Shape,
        documented: Shape | None = None,
        owner: str | None = None,
        member: str | None = None,
    ) -> dict[str, Any]:
        out = self._schema(shape, owner, member)
        doc = _description(documented or shape)
        if doc and "$ref" not in out:
            out["description"] = doc
        elif doc:
            # draft-07 ignores siblings of $ref; allOf keeps the member's own hover text.
            out = {"allOf": [out], "description": doc}
        return out

    def _schema(self, shape: Shape, owner: str | None, member: str | None) -> dict[str, Any]:
        kind = shape.type_name
        rules = member_rules(owner, member, shape)
        if kind == "structure":
            assert isinstance(shape, StructureShape)
            if shape.name not in self.definitions:
                self.definitions[shape.name] = {}  # placeholder: recursion-safe
                body: dict[str, Any] = {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        name: self.schema(child, child, shape.name, name)
                        for name, child in shape.members.items()
                    },
                }
                if shape.required_members:
                    body["required"] = list(shape.required_members)
                self.definitions[shape.name] = body
            return {"$ref": f"#/definitions/{shape.name}"}
        if kind == "list":
            items = self.schema(shape.member)
            return _with_rules({"type": "array", "items": items}, rules.rules)
        if kind == "map":
            out: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.schema(shape.value),
            }
            if rules.key_rules:
                out["propertyNames"] = _with_rules({}, rules.key_rules)
            return _with_rules(out, rules.rules)
        if kind == "string":
            return _with_rules({"type": "string"}, rules.rules)
        if kind in ("integer", "long"):
            return _with_rules({"type": "integer"}, rules.rules)
        if kind in ("double", "float"):
            return _with_rules({"type": "number"}, rules.rules)
        if kind == "boolean":
            return {"type": "boolean"}
        return {}  # timestamp/blob never occur in the two requests


def _options_schema(
    model: type[JobOptions] | type[DefinitionOptions],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pydantic model's own schema, its nested models hoisted to ``definitions``."""
    schema = model.model_json_schema(by_alias=True, ref_template="#/definitions/{model}")
    nested = schema.pop("$defs", {})
    return schema, nested


def manifest_schema() -> dict[str, Any]:
    """The whole schema: plain requests of both kinds and the envelope."""
    walker = _ShapeWalker()
    kinds: tuple[Kind, ...] = ("job", "job-definition")
    request_refs = {kind: walker.schema(input_shape(kind)) for kind in kinds}
    definitions = walker.definitions
    option_refs: dict[Kind, str] = {}
    models: dict[Kind, type[JobOptions] | type[DefinitionOptions]] = {
        "job": JobOptions,
        "job-definition": DefinitionOptions,
    }
    for kind, model in models.items():
        body, nested = _options_schema(model)
        definitions.update(nested)
        definitions[model.__name__] = body
        option_refs[kind] = f"#/definitions/{model.__name__}"

    def request(kind: Kind) -> dict[str, Any]:
        return request_refs[kind]

    # A scheduled job's runs are named <jobName>-YYYYMMDDTHHMMZ (AWS allows 128).
    scheduled_name: dict[str, Any] = {
        "if": {
            "required": ["kind", "options"],
            "properties": {
                "kind": {"const": "Job"},
                "options": {
                    "type": "object",
                    "required": ["schedule"],
                    "properties": {"schedule": {"type": "object"}},
                },
            },
        },
        "then": {
            "properties": {"spec": {"properties": {"jobName": {"maxLength": MAX_TEMPLATE_NAME}}}}
        },
    }
    envelope_kinds: list[dict[str, Any]] = [scheduled_name]
    for envelope_name, kind in ENVELOPE_KIND.items():
        envelope_kinds.append(
            {
                "if": {"properties": {"kind": {"const": envelope_name}}, "required": ["kind"]},
                "then": {
                    "properties": {
                        "spec": request(kind),
                        "options": {"anyOf": [{"type": "null"}, {"$ref": option_refs[kind]}]},
                    }
                },
            }
        )
    definitions["Envelope"] = {
        "type": "object",
        "description": "batch-gitops envelope: the request in spec, controller extras in options.",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"enum": list(ENVELOPE_KIND)},
            "metadata": {"type": "object"},
            "spec": {"type": "object"},
            "options": {"type": ["object", "null"]},
        },
        "allOf": envelope_kinds,
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "batch-gitops manifest",
        "description": (
            "An AWS Batch SubmitJob or RegisterJobDefinition request (as for "
            "`aws batch ... --cli-input-json`), or the batch-gitops/v1 envelope. "
            "Generated from botocore's Batch service model by `batch-gitops schema`."
        ),
        "if": {"anyOf": [{"required": ["apiVersion"]}, {"required": ["kind", "spec"]}]},
        "then": {"$ref": "#/definitions/Envelope"},
        "else": {
            "if": {"required": ["jobDefinitionName"]},
            "then": request("job-definition"),
            "else": request("job"),
        },
        "definitions": dict(sorted(definitions.items())),
    }
