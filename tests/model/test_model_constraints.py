"""Every constraint botocore's Batch model (and AWS's member documentation) puts on a
request field is enforced: generated from the model, one violating value per rule per
place, each reported by validate naming exactly that field, and refused by the editor
schema too. Constraint kinds the Batch model does not use today (patterns, numeric
ranges) are proven on a small synthetic model."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import botocore.session
import jsonschema
import pytest
from botocore.model import ShapeResolver

from controller.model.constraints import (
    DOCUMENTED,
    Rule,
    member_rules,
    shape_rules,
)
from controller.model.manifests import Manifest, load_manifest, validate_request
from controller.model.schema import _ShapeWalker, manifest_schema
from tests.model.model_walk import MAP_KEY, Place, field_name, minimal, place_value, places

# botocore shape metadata that is not a value constraint.
NOT_CONSTRAINTS = {"required", "error", "exception", "document", "union", "sensitive", "fault"}
KNOWN_CONSTRAINTS = {"min", "max", "pattern", "enum"}


def _violations(rule: Rule, place: Place) -> list[Any]:
    """Values breaking ``rule`` (and nothing else) at ``place``."""
    limit = rule.value
    item = minimal(place.shape.member) if place.shape.type_name == "list" else None  # type: ignore[attr-defined]
    entry = minimal(place.shape.value) if place.shape.type_name == "map" else None  # type: ignore[attr-defined]
    table: dict[str, Callable[[], list[Any]]] = {
        "minLength": lambda: ["x" * (limit - 1)] if limit > 0 else [],
        "maxLength": lambda: ["x" * (limit + 1)],
        "minItems": lambda: [[item] * (limit - 1)] if limit > 0 else [],
        "maxItems": lambda: [[item] * (limit + 1)],
        "minProperties": lambda: [{f"k{i}": entry for i in range(limit - 1)}] if limit > 0 else [],
        "maxProperties": lambda: [{f"k{i}": entry for i in range(limit + 1)}],
        "minimum": lambda: [limit - 1],
        "maximum": lambda: [limit + 1],
        "enum": lambda: ["NOT_A_VALUE"],
        "enumIgnoringCase": lambda: ["NOT_A_VALUE"],
        "pattern": lambda: [v for v in ("-bad name", "", "!") if not re.search(limit, v)][:1],
    }
    return table[rule.keyword]()


def _cases() -> list[tuple[str, Place, Rule, Any, str]]:
    cases = []
    for kind in ("job", "job-definition"):
        for place in places(kind):  # type: ignore[arg-type]
            rules = member_rules(place.owner, place.member, place.shape)
            for rule in rules.rules:
                for value in _violations(rule, place):
                    label = f"{kind}:{place.field}:{rule.keyword}={rule.value!r}"[:120]
                    cases.append((label, place, rule, value, place.field))
            for rule in rules.key_rules:
                if rule.keyword == "notPrefix":
                    bad_key = rule.value + "x"
                else:
                    bad_key = {"minLength": "", "maxLength": "k" * (rule.value + 1)}[rule.keyword]
                value = {bad_key: minimal(place.shape.value)}  # type: ignore[attr-defined]
                label = f"{kind}:{place.field}:key {rule.keyword}"
                cases.append((label, place, rule, value, f"{place.field}.{bad_key}"))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def schema_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(manifest_schema())


@pytest.mark.parametrize(
    ("label", "place", "rule", "value", "field"), CASES, ids=[c[0] for c in CASES]
)
def test_each_rule_at_each_place_is_enforced_and_named(
    label: str,
    place: Place,
    rule: Rule,
    value: Any,
    field: str,
    schema_validator: jsonschema.Draft7Validator,
) -> None:
    """A request that breaks one rule at one place fails validate with exactly that field,
    the message shows the rule, and the editor schema refuses the same file."""
    request = place_value(place.kind, place.path, value)
    loaded = load_manifest("m.json", json.dumps(request).encode())
    assert isinstance(loaded, list), f"{label}: accepted {request}"
    assert {e.field for e in loaded} == {field}, [str(e) for e in loaded]
    assert not schema_validator.is_valid(request), f"{label}: schema accepted it"


def test_the_model_walk_covers_every_constraint_kind_in_the_model() -> None:
    """Every constraint kind the Batch model uses is one validate knows, every shape
    carrying one is reached from the two requests (or is not part of them), and the
    generated table exercises each kind: a new kind of constraint fails here."""
    model = botocore.session.get_session().get_service_model("batch")
    kinds = set()
    for name in model.shape_names:
        shape = model.shape_for(name)
        kinds |= set(shape.metadata) - NOT_CONSTRAINTS
    assert kinds <= KNOWN_CONSTRAINTS, kinds - KNOWN_CONSTRAINTS
    exercised = {rule.keyword for _, _, rule, _, _ in CASES}
    # minItems: the model's only list minimum is 0; minProperties: its only map minimum is
    # on the request tags, which the controller always fills (`tags: {}` is fine in a
    # file). The synthetic model covers both.
    assert {"minLength", "maxLength", "maxItems"} <= exercised
    assert {"maxProperties", "enum", "enumIgnoringCase", "pattern", "minimum"} <= exercised
    assert {"maximum", "notPrefix"} <= exercised


def test_case_insensitive_enums_are_the_documented_ones() -> None:
    """The enums AWS documents as case-insensitive are read from the model's member
    documentation: today exactly EvaluateOnExit.action, where `retry` is accepted."""
    found = set()
    for kind in ("job", "job-definition"):
        for place in places(kind):  # type: ignore[arg-type]
            if any(r.keyword == "enumIgnoringCase" for r in shape_rules(place.shape)):
                found.add(f"{place.owner}.{place.member}")
    assert found == {"EvaluateOnExit.action"}
    for action in ("retry", "Exit", "RETRY"):
        request = place_value(
            "job-definition",
            ("retryStrategy", "evaluateOnExit", 0),
            {"action": action, "onExitCode": "1"},
        )
        request["retryStrategy"]["attempts"] = 2
        assert isinstance(load_manifest("d.json", json.dumps(request).encode()), Manifest)
        assert jsonschema.Draft7Validator(manifest_schema()).is_valid(request)


@pytest.mark.parametrize("entry", DOCUMENTED, ids=lambda e: f"{e.owner}.{e.member}")
def test_documented_limits_still_say_what_aws_documents(entry: Any) -> None:
    """Each limit taken from AWS's documentation of a member quotes a sentence that is
    still in botocore's documentation of that member (or says it has none to quote)."""
    model = botocore.session.get_session().get_service_model("batch")
    member = model.shape_for(entry.owner).members[entry.member]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", member.documentation or ""))
    if entry.evidence:
        assert entry.evidence in text, text


def test_eks_empty_limit_key_and_size_limit_are_refused() -> None:
    """The issue's cases: an empty `resources.limits` value, an empty `emptyDir.sizeLimit`
    and a value longer than 256 characters are refused (Quantity: 1-256 characters)."""
    pod = {
        "containers": [{"image": "busybox", "resources": {"limits": {"cpu": ""}}}],
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": ""}}],
    }
    request = {
        "jobDefinitionName": "d",
        "type": "container",
        "eksProperties": {"podProperties": pod},
    }
    loaded = load_manifest("d.json", json.dumps(request).encode())
    assert isinstance(loaded, list)
    assert {e.field for e in loaded} == {
        "eksProperties.podProperties.containers[0].resources.limits.cpu",
        "eksProperties.podProperties.volumes[0].emptyDir.sizeLimit",
    }
    assert all("must have at least 1" in e.message for e in loaded)


# A small model with the constraint kinds the Batch model does not use today.
SYNTHETIC = {
    "Request": {
        "type": "structure",
        "members": {
            "code": {"shape": "Code"},
            "count": {"shape": "Count"},
            "ratio": {"shape": "Ratio"},
            "level": {"shape": "Level"},
            "names": {"shape": "Names"},
            "labels": {"shape": "Labels"},
        },
    },
    "Names": {"type": "list", "member": {"shape": "Code"}, "min": 1, "max": 2},
    "Labels": {"type": "map", "key": {"shape": "Code"}, "value": {"shape": "Code"}, "min": 1},
    "Code": {"type": "string", "pattern": "^[a-z]+$", "min": 2, "max": 4},
    "Count": {"type": "integer", "min": 1, "max": 5},
    "Ratio": {"type": "double", "min": 0.5, "max": 1.5},
    "Level": {
        "type": "string",
        "enum": ["LOW", "HIGH"],
        "documentation": "The values aren't case sensitive.",
    },
}


@pytest.mark.parametrize(
    ("value", "field", "accepted"),
    [
        ({"code": "AB"}, "code", False),  # pattern
        ({"code": "a"}, "code", False),  # min length
        ({"code": "abcde"}, "code", False),  # max length
        ({"count": 0}, "count", False),
        ({"count": 6}, "count", False),
        ({"ratio": 0.25}, "ratio", False),
        ({"ratio": 2.0}, "ratio", False),
        ({"level": "medium"}, "level", False),
        ({"names": []}, "names", False),  # list minimum
        ({"names": ["ab", "cd", "ef"]}, "names", False),
        ({"labels": {}}, "labels", False),  # map minimum
        ({"level": "high", "code": "abc", "count": 5, "ratio": 1.5}, "", True),
    ],
)
def test_every_constraint_kind_is_checked_on_a_synthetic_model(
    value: dict[str, Any], field: str, accepted: bool
) -> None:
    """Patterns, string lengths, integer and double ranges and case-insensitive enums in
    a model are enforced by validate (naming the field) and by the derived schema alike,
    so a constraint AWS adds to the Batch model is enforced without a code change."""
    shape = ShapeResolver(SYNTHETIC).get_shape_by_name("Request")
    problems = list(validate_request(value, shape))
    walker = _ShapeWalker()
    schema = {**walker.schema(shape), "definitions": walker.definitions}
    if accepted:
        assert problems == []
        assert jsonschema.Draft7Validator(schema).is_valid(value)
    else:
        assert [where for where, _ in problems] == [field], problems
        if isinstance(value[field], str | int | float):  # the message shows the value
            assert str(value[field]) in problems[0][1], problems
        assert not jsonschema.Draft7Validator(schema).is_valid(value)


def test_field_name_renders_paths_like_validate() -> None:
    """The helper's field names are validate's: members dotted, list items indexed."""
    assert field_name(("a", 0, "b", ("key", MAP_KEY))) == "a[0].b.k"
