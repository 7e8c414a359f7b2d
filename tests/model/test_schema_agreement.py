"""One source of truth: the editor schema (`batch-gitops schema`) and `validate` judge
the same corpus the same way. The corpus: the repository's example manifests, the
hand-written files under tests/model/corpus (good/ and bad/), a request per place
of botocore's model with a minimal valid value there, and a request per rule per place
breaking it. The only rules JSON Schema cannot carry are listed in corpus/runtime-only,
each file saying why; for those validate refuses and the schema accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from controller.model.manifests import Manifest, load_manifest, parse_document
from controller.model.schema import manifest_schema
from tests.model.model_walk import minimal, place_value, places
from tests.model.test_model_constraints import CASES

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
SUFFIXES = (".json", ".yaml", ".yml")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in SUFFIXES)


GOOD_FILES = _files(ROOT / "manifests") + _files(CORPUS / "good")
BAD_FILES = _files(CORPUS / "bad")
RUNTIME_ONLY = _files(CORPUS / "runtime-only")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = manifest_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _judge(
    validator: jsonschema.Draft7Validator, name: str, raw: bytes
) -> tuple[list[str], list[str]]:
    """(validate's error fields, the schema's error locations) for one file."""
    loaded = load_manifest(name, raw)
    ours = [] if isinstance(loaded, Manifest) else [e.field for e in loaded]
    document = parse_document(name, raw)
    theirs = [_location(error.absolute_path) for error in validator.iter_errors(document)]
    return ours, theirs


def _location(path: Any) -> str:
    """A jsonschema error path written the way validate writes fields: a.b[0].c."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).removeprefix(".")


def _generated_good() -> list[tuple[str, dict[str, Any]]]:
    """Every place of both requests set to a minimal valid value (parents minimal)."""
    out = []
    for kind in ("job", "job-definition"):
        for place in places(kind):  # type: ignore[arg-type]
            value = minimal(place.shape, place.owner, place.member)
            out.append((f"{kind}:{place.field}", place_value(place.kind, place.path, value)))
    return out


@pytest.mark.parametrize("path", GOOD_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_good_files_pass_both(validator: jsonschema.Draft7Validator, path: Path) -> None:
    """Each good file passes validate and the schema."""
    ours, theirs = _judge(validator, path.name, path.read_bytes())
    assert (ours, theirs) == ([], [])


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.name)
def test_bad_files_fail_both_at_the_same_place(
    validator: jsonschema.Draft7Validator, path: Path
) -> None:
    """Each bad file fails validate and the schema, and every field validate names lies
    under a location the schema reports (the schema reports an unknown key at its parent)."""
    ours, theirs = _judge(validator, path.name, path.read_bytes())
    assert ours and theirs, (ours, theirs)
    for field in ours:
        assert any(
            field == loc or field.startswith((f"{loc}.", f"{loc}[")) or not loc for loc in theirs
        ), (
            field,
            theirs,
        )


def test_generated_corpus_finds_no_disagreement(validator: jsonschema.Draft7Validator) -> None:
    """A request per place with a minimal valid value passes both; a request per rule per
    place that breaks it fails both (generated from botocore's model)."""
    disagreements = []
    for label, request in _generated_good():
        ours, theirs = _judge(validator, "g.json", json.dumps(request).encode())
        if ours or theirs:
            disagreements.append((label, ours, theirs))
    for label, place, _, value, _ in CASES:
        request = place_value(place.kind, place.path, value)
        ours, theirs = _judge(validator, "b.json", json.dumps(request).encode())
        if not ours or not theirs:
            disagreements.append((label, ours, theirs))
    assert disagreements == []
    assert len(_generated_good()) > 300 and len(CASES) > 60  # the whole model, not a sample


@pytest.mark.parametrize("path", RUNTIME_ONLY, ids=lambda p: p.name)
def test_runtime_only_rules_are_the_listed_ones(
    validator: jsonschema.Draft7Validator, path: Path
) -> None:
    """What JSON Schema cannot express (cron field values, time zone names) is refused by
    validate and accepted by the schema; each such file says why in its first line."""
    ours, theirs = _judge(validator, path.name, path.read_bytes())
    assert ours and not theirs
    assert path.read_text().startswith("# ")
