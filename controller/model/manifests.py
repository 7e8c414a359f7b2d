"""Files -> typed manifests, with every problem named by file and field.

A manifest is exactly what ``aws batch register-job-definition`` or
``aws batch submit-job --cli-input-json`` accepts (JSON or YAML, kind inferred
from its keys), or the envelope form::

    apiVersion: batch-gitops/v1
    kind: Job            # or JobDefinition
    spec: {...}          # the request, unchanged
    options: {...}       # controller extras the request shape cannot carry

Requests are validated against botocore's own Batch service model, so every
field AWS accepts is accepted and nothing else is. Pure: callers hand in
``(path, bytes)`` pairs; this module never touches git, AWS or the disk
(except :func:`read_directory`, the offline ``validate`` entry point).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import botocore.session
import yaml
from botocore.model import Shape, StructureShape
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.model.constraints import (
    Rule,
    member_rules,
)
from controller.model.schedule_rules import MAX_TEMPLATE_NAME, ScheduleOptions

MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")
API_VERSION = "batch-gitops/v1"
MAX_BYTES = 1024 * 1024
# A manifest nests a few levels; 64 leaves room and stops stack-exhaustion input.
MAX_DEPTH = 64
# Nodes after expanding YAML aliases: a "billion laughs" file is tiny on disk but
# expands exponentially once walked (validation, hashing, JSON encoding).
MAX_NODES = 100_000

Kind = Literal["job", "job-definition"]
OPERATION = {"job": "SubmitJob", "job-definition": "RegisterJobDefinition"}
ENVELOPE_KIND: dict[str, Kind] = {"Job": "job", "JobDefinition": "job-definition"}


@dataclass(frozen=True)
class ManifestError:
    """One problem, printed as ``path: field: message`` (``path: message`` when the
    problem is the whole file, such as a JSON syntax error)."""

    path: str
    field: str
    message: str

    def __str__(self) -> str:
        if not self.field:
            return f"{self.path}: {self.message}"
        return f"{self.path}: {self.field}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "field": self.field, "message": self.message}


class JobOptions(BaseModel):
    """Envelope ``options`` of a Job."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    on_change: Literal["replace", "keep"] = Field(
        "replace",
        alias="onChange",
        description="replace: stop the previous run if still active before submitting the new "
        "one; keep: let it finish.",
    )
    prune: bool = Field(True, description="false: removing the manifest never stops the job.")
    rerun: int = Field(
        0, ge=0, description="Bump to run an unchanged job again; part of the spec hash."
    )
    schedule: ScheduleOptions | None = Field(
        None,
        description="Cron schedule: one run per tick instead of one run.",
    )


class DefinitionOptions(BaseModel):
    """Envelope ``options`` of a JobDefinition."""

    model_config = ConfigDict(extra="forbid")

    prune: bool = Field(True, description="false: removing the manifest never deregisters.")


@dataclass(frozen=True)
class Manifest:
    """One valid manifest: its request exactly as AWS would take it."""

    path: str
    kind: Kind
    request: dict[str, Any]
    options: JobOptions | DefinitionOptions
    blob: str = ""
    # "spec." for the envelope form: where the request's fields sit in the file.
    field_prefix: str = ""

    @property
    def name(self) -> str:
        key = "jobName" if self.kind == "job" else "jobDefinitionName"
        return str(self.request[key])


@dataclass
class LoadResult:
    manifests: list[Manifest] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)
    # Paths that look like manifests but failed: their jobs must not be pruned.
    invalid_paths: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Limits:
    """Bounds on one manifest file; the daemon builds them from its settings."""

    max_bytes: int = MAX_BYTES
    max_depth: int = MAX_DEPTH
    max_nodes: int = MAX_NODES


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting while composing (before any recursion
    limit is reached) and alias graphs that expand beyond ``max_nodes``."""

    max_depth = MAX_DEPTH
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ValueError(
                    f"nested deeper than {self.max_depth} levels at line {mark.line + 1}"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_nodes(node: yaml.Node, limit: int) -> int:
    """Node count with every alias expanded, memoized so a bomb costs linear time."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(current: yaml.Node) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            mark = current.start_mark
            raise ValueError(f"recursive YAML alias at line {mark.line + 1}")
        visiting.add(key)
        total = 1
        if isinstance(current, yaml.SequenceNode):
            total += sum(size(child) for child in current.value)
        elif isinstance(current, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in current.value)
        visiting.discard(key)
        sizes[key] = min(total, limit + 1)  # saturate: no giant integers either
        return sizes[key]

    return size(node)


def _load_yaml(text: str, limits: Limits) -> list[Any]:
    loader = _BoundedLoader(text)
    loader.max_depth = limits.max_depth
    documents: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            expanded = _expanded_nodes(node, limits.max_nodes)
            if expanded > limits.max_nodes:
                raise ValueError(
                    f"expands to more than {limits.max_nodes} values (YAML aliases); "
                    "write the values out or split the file"
                )
            documents.append(loader.construct_document(node))
    finally:
        loader.dispose()
    return documents


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of decoded JSON, iteratively (no recursion to exhaust)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(current, dict):
            stack.extend((child, level + 1) for child in current.values())
        elif isinstance(current, list):
            stack.extend((child, level + 1) for child in current)
    return deepest


@cache
def _input_shape(kind: Kind) -> StructureShape:
    model = botocore.session.get_session().get_service_model("batch")
    shape = model.operation_model(OPERATION[kind]).input_shape
    assert isinstance(shape, StructureShape)
    return shape


def input_shape(kind: Kind) -> StructureShape:
    """The botocore input shape of the request a manifest of ``kind`` is."""
    return _input_shape(kind)


def is_manifest_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    if any(part.startswith(".") for part in parts):
        return False  # .github/, .batch-gitops/ and dotfiles are never manifests
    return path.endswith(MANIFEST_SUFFIXES)


def parse_document(path: str, raw: bytes, limits: Limits | None = None) -> Any:
    """Decode JSON or YAML (safely: no tags, no objects, bounded). Raises ValueError."""
    limits = limits or Limits()
    if len(raw) > limits.max_bytes:
        raise ValueError(f"file is {len(raw)} bytes; the limit is {limits.max_bytes}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from exc
    if path.endswith(".json"):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from exc
        except RecursionError as exc:
            raise ValueError(f"nested deeper than {limits.max_depth} levels") from exc
        if _depth(decoded, limits.max_depth) > limits.max_depth:
            raise ValueError(f"nested deeper than {limits.max_depth} levels")
        return decoded
    try:
        documents = [doc for doc in _load_yaml(text, limits) if doc is not None]
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {limits.max_depth} levels") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValueError(f"invalid YAML{where}: {problem}") from exc
    if len(documents) > 1:
        raise ValueError("holds several YAML documents; put one manifest in each file")
    return documents[0] if documents else None


def _hint(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


# describe-* answers carry fields a request cannot: which output shape echoes which
# request, and the command a user copied the file from.
_ECHOES = {
    "RegisterJobDefinitionRequest": ("JobDefinition", "describe-job-definitions"),
    "SubmitJobRequest": ("JobDetail", "describe-jobs"),
}


@cache
def _output_only(request_shape: str) -> tuple[str, set[str]]:
    """The describe command and the fields its answer has that the request does not."""
    echo = _ECHOES.get(request_shape)
    if echo is None:
        return "", set()
    model = botocore.session.get_session().get_service_model("batch")
    output = model.shape_for(echo[0])
    request = model.shape_for(request_shape)
    assert isinstance(output, StructureShape) and isinstance(request, StructureShape)
    return echo[1], set(output.members) - set(request.members)


def _unknown_field(shape: StructureShape, key: str) -> str:
    command, output_only = _output_only(shape.name)
    if key in output_only:
        # container -> containerOverrides, eksProperties -> eksPropertiesOverride, ...
        instead = [m for m in shape.members if m.startswith(key) and m != key]
        hint = f"; a request sets {instead[0]!r} instead" if instead else ""
        return f"output-only field of `aws batch {command}` output: AWS sets it, remove it{hint}"
    return "unknown field" + _hint(key, shape.members)


def _rule_problems(value: Any, rules: Iterable[Rule], where: str) -> Iterator[tuple[str, str]]:
    for rule in rules:
        message = rule.violation(value)
        if message is not None:
            if rule.keyword in ("enum", "enumIgnoringCase"):
                message += _hint(value, rule.value)
            yield where, message


def validate_request(
    value: Any,
    shape: Shape,
    where: str = "",
    owner: str | None = None,
    member: str | None = None,
) -> Iterator[tuple[str, str]]:
    """Walk ``value`` against a botocore shape, yielding ``(field path, message)``.

    botocore's ParamValidator stops at the first problem per value and gives no
    hints; this walk uses the same model, reports every problem, and suggests
    the member a typo was meant to be. ``owner``/``member`` name the structure
    member being checked, for the rules AWS documents per member
    (:mod:`controller.model.constraints`, shared with the editor schema).
    """
    kind = shape.type_name
    rules = member_rules(owner, member, shape)
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            yield where, f"must be an object, not {_type_name(value)}"
            return
        for required in shape.required_members:
            if required not in value:
                yield _join(where, required), "required field is missing"
        for key, item in value.items():
            if not isinstance(key, str):  # YAML allows `? ` (null), numbers, lists as keys
                yield _join(where, str(key)), f"field names are strings, not {_type_name(key)}"
                continue
            child = shape.members.get(key)
            if child is None:
                yield _join(where, key), _unknown_field(shape, key)
            else:
                yield from validate_request(item, child, _join(where, key), shape.name, key)
    elif kind == "list":
        if not isinstance(value, list):
            yield where, f"must be a list, not {_type_name(value)}"
            return
        yield from _rule_problems(value, rules.rules, where)
        for index, item in enumerate(value):
            yield from validate_request(item, shape.member, f"{where}[{index}]")
    elif kind == "map":
        if not isinstance(value, dict):
            yield where, f"must be an object, not {_type_name(value)}"
            return
        yield from _rule_problems(value, rules.rules, where)
        for key, item in value.items():
            if not isinstance(key, str):
                yield where, f"keys must be strings, not {_type_name(key)}"
                continue
            yield from _rule_problems(key, rules.key_rules, f"{where}.{key}")
            yield from validate_request(item, shape.value, f"{where}.{key}")
    elif kind == "string":
        if not isinstance(value, str):
            yield where, f"must be a string, not {_type_name(value)}"
            return
        yield from _rule_problems(value, rules.rules, where)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            yield where, f"must be an integer, not {_type_name(value)}"
            return
        yield from _rule_problems(value, rules.rules, where)
    elif kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            yield where, f"must be a number, not {_type_name(value)}"
            return
        yield from _rule_problems(value, rules.rules, where)
    elif kind == "boolean" and not isinstance(value, bool):
        yield where, f"must be true or false, not {_type_name(value)}"
    # timestamp and blob never occur in the two requests we accept.


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def infer_kind(document: dict[str, Any]) -> Kind | None:
    if "jobDefinitionName" in document:
        return "job-definition"
    if "jobQueue" in document or "jobName" in document:
        return "job"
    return None


def load_manifest(
    path: str, raw: bytes, blob: str = "", limits: Limits | None = None
) -> Manifest | list[ManifestError]:
    """Parse and validate one file: a Manifest, or every error it has."""
    try:
        document = parse_document(path, raw, limits)
    except ValueError as exc:
        return [ManifestError(path, "", str(exc))]
    if not isinstance(document, dict):
        return [ManifestError(path, "", f"must be an object, not {_type_name(document)}")]

    options_raw: Any = {}
    prefix = ""
    if "apiVersion" in document or ("kind" in document and "spec" in document):
        envelope_errors = []
        if document.get("apiVersion") != API_VERSION:
            envelope_errors.append(ManifestError(path, "apiVersion", f"must be {API_VERSION!r}"))
        kind_name = document.get("kind")
        if kind_name not in ENVELOPE_KIND:
            envelope_errors.append(
                ManifestError(path, "kind", f"must be one of {', '.join(ENVELOPE_KIND)}")
            )
        for key in document:
            if key not in ("apiVersion", "kind", "metadata", "spec", "options"):
                envelope_errors.append(
                    ManifestError(
                        path, key, "unknown envelope field" + _hint(key, ["spec", "options"])
                    )
                )
        if not isinstance(document.get("spec"), dict):
            envelope_errors.append(ManifestError(path, "spec", "must be an object"))
        if "metadata" in document and not isinstance(document["metadata"], dict):
            message = f"must be an object, not {_type_name(document['metadata'])}"
            envelope_errors.append(ManifestError(path, "metadata", message))
        if envelope_errors:
            return envelope_errors
        kind: Kind = ENVELOPE_KIND[str(kind_name)]
        request = document["spec"]
        options_raw = document.get("options")
        options_raw = {} if options_raw is None else options_raw
        prefix = "spec."
    else:
        inferred = infer_kind(document)
        if inferred is None:
            return [
                ManifestError(
                    path,
                    "",
                    "cannot tell the kind: a job needs jobName/jobQueue, a job definition "
                    "needs jobDefinitionName (or use the apiVersion/kind/spec envelope)",
                )
            ]
        kind = inferred
        request = document

    problems = list(validate_request(request, input_shape(kind)))
    errors = [ManifestError(path, prefix + where, message) for where, message in problems]

    options: JobOptions | DefinitionOptions
    try:
        model = JobOptions if kind == "job" else DefinitionOptions
        options = model.model_validate(options_raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = "".join(f".{part}" for part in err["loc"])
            errors.append(ManifestError(path, f"options{loc}", err["msg"]))
        options = JobOptions() if kind == "job" else DefinitionOptions()
    if isinstance(options, JobOptions) and options.schedule is not None:
        name = request.get("jobName")
        if isinstance(name, str) and len(name) > MAX_TEMPLATE_NAME:
            errors.append(
                ManifestError(
                    path,
                    prefix + "jobName",
                    f"{name!r} has {len(name)} characters; a scheduled job's name may have at "
                    f"most {MAX_TEMPLATE_NAME}: each run is named <jobName>-YYYYMMDDTHHMMZ and "
                    "AWS allows 128",
                )
            )
    if errors:
        return errors
    return Manifest(
        path=path, kind=kind, request=request, options=options, blob=blob, field_prefix=prefix
    )


def load_files(files: Iterable[tuple[str, bytes, str]], limits: Limits | None = None) -> LoadResult:
    """Load every manifest file; ``files`` yields ``(repo path, content, blob sha)``."""
    result = LoadResult()
    for path, raw, blob in files:
        if not is_manifest_path(path):
            continue
        loaded = load_manifest(path, raw, blob, limits)
        if isinstance(loaded, Manifest):
            result.manifests.append(loaded)
        else:
            result.errors.extend(loaded)
            result.invalid_paths.add(path)
    return result


SYMLINK_MESSAGE = (
    "symbolic link: never followed (it could point outside the manifest directory); "
    "commit the manifest itself"
)


def linked_manifests(root: Path, prefix: str = "") -> list[str]:
    """Manifest-named symlinks under ``root`` (not followed): each is reported invalid."""
    return [
        f"{prefix}{link.relative_to(root).as_posix()}"
        for link in sorted(root.rglob("*"))
        if link.is_symlink() and is_manifest_path(link.relative_to(root).as_posix())
    ]


def read_directory(root: Path, prefix: str = "") -> Iterator[tuple[str, bytes, str]]:
    """Files of a working directory as ``(path, bytes, "")``, for offline ``validate``."""
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root).as_posix()
        # Symlinks are never followed, as in a pass (the source skips symlink
        # blobs): a link must not pull in a file from outside the directory.
        if any(
            (root / part).is_symlink()
            for part in (file.relative_to(root), *file.relative_to(root).parents)
        ):
            continue
        if file.is_file() and is_manifest_path(relative):
            yield (f"{prefix}{relative}", file.read_bytes(), "")
