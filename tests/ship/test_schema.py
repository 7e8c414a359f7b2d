"""``batch-gitops schema``: the JSON Schema derived from botocore's model accepts
every example manifest, rejects typos the way ``validate`` does, and covers every
member of the two request shapes (so it cannot lag behind botocore)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from controller.model.manifests import Manifest, input_shape, load_manifest, parse_document
from controller.model.schema import manifest_schema
from tests.support.cli import run_cli
from tests.support.manifests import definition, envelope, job

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    p for p in (ROOT / "manifests").rglob("*") if p.suffix in (".json", ".yaml", ".yml")
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = manifest_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, document: Any) -> list[str]:
    return [
        "/".join(str(p) for p in error.absolute_path) + ": " + error.message
        for error in validator.iter_errors(document)
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_example_is_valid(validator: jsonschema.Draft7Validator, path: Path) -> None:
    """Each file in manifests/ (valid for the controller) is valid for the schema."""
    assert isinstance(load_manifest(path.name, path.read_bytes()), Manifest)
    document = parse_document(path.name, path.read_bytes())
    assert _errors(validator, document) == []


JOB = job("nightly", "q")
DEFINITION = definition("trainer")
ENVELOPE = envelope(JOB, rerun=1)

BROKEN = {
    "top-level typo": ({**JOB, "jobQeue": "q"}, "jobQeue"),
    "nested typo": (
        {**DEFINITION, "containerProperties": {"imagee": "busybox"}},
        "imagee",
    ),
    "bad enum": ({**DEFINITION, "type": "contianer"}, "contianer"),
    "wrong type": ({**JOB, "retryStrategy": {"attempts": "three"}}, "three"),
    "missing required": ({"jobName": "x", "jobDefinition": "d"}, "jobQueue"),
    "definition missing type": (
        {"jobDefinitionName": "d", "containerProperties": {"image": "x"}},
        "type",
    ),
    "envelope options typo": ({**ENVELOPE, "options": {"onChnage": "keep"}}, "onChnage"),
    "envelope spec typo": ({**ENVELOPE, "spec": {**JOB, "paramters": {}}}, "paramters"),
    "envelope bad kind": ({**ENVELOPE, "kind": "Jobs"}, "Jobs"),
    "envelope bad onChange": ({**ENVELOPE, "options": {"onChange": "kep"}}, "kep"),
    "definition options on a definition": (
        envelope(DEFINITION, "JobDefinition", rerun=1),
        "rerun",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_typos_are_rejected_like_validate_does(
    validator: jsonschema.Draft7Validator, name: str
) -> None:
    """A broken manifest fails the schema, naming the offending key or value, and the
    controller's own validation rejects it too."""
    document, needle = BROKEN[name]
    errors = _errors(validator, document)
    assert errors, f"schema accepted {name}"
    assert any(needle in e for e in errors), errors
    raw = json.dumps(document).encode()
    assert not isinstance(load_manifest("x.json", raw), Manifest)


def test_valid_forms_are_accepted(validator: jsonschema.Draft7Validator) -> None:
    """The plain request of both kinds and the envelope of both kinds are accepted."""
    definition_envelope = envelope(DEFINITION, "JobDefinition", prune=False)
    for document in (JOB, DEFINITION, ENVELOPE, definition_envelope):
        assert _errors(validator, document) == []
        assert isinstance(load_manifest("x.json", json.dumps(document).encode()), Manifest)


def test_schema_covers_every_botocore_member() -> None:
    """Every member of SubmitJob and RegisterJobDefinition, with botocore's required
    list and enums, is in the schema: it is derived, not transcribed."""
    schema = manifest_schema()
    for kind in ("job", "job-definition"):
        shape = input_shape(kind)
        body = schema["definitions"][shape.name]
        assert set(body["properties"]) == set(shape.members)
        assert body["required"] == list(shape.required_members)
        assert body["additionalProperties"] is False
    type_enum = schema["definitions"]["RegisterJobDefinitionRequest"]["properties"]["type"]
    assert set(type_enum["enum"]) == set(input_shape("job-definition").members["type"].enum)


def test_cli_prints_the_schema(tmp_path: Path) -> None:
    """`batch-gitops schema` prints the same JSON document; -f writes it to a file."""
    out = run_cli("schema")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == manifest_schema()
    target = tmp_path / "schema.json"
    written = run_cli("schema", "-f", str(target))
    assert written.returncode == 0 and json.loads(target.read_text()) == manifest_schema()
