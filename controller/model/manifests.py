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
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import botocore.session
import yaml
from botocore.model import Shape, StructureShape
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.model.schedule_rules import MAX_TEMPLATE_NAME, ScheduleOptions

MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")
API_VERSION = "batch-gitops/v1"
TAG_PREFIX = "batch-gitops/"
# Tags the controller adds to each resource; AWS allows 50 in all.
RESERVED_TAG_COUNT = 6
MAX_TAGS = 50
MAX_BYTES = 1024 * 1024
# A manifest nests a few levels; 64 leaves room and stops stack-exhaustion input.
MAX_DEPTH = 64
# Nodes after expanding YAML aliases: a "billion laughs" file is tiny on disk but
# expands exponentially once walked (validation, hashing, JSON encoding).
MAX_NODES = 100_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

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


def validate_request(value: Any, shape: Shape, where: str = "") -> Iterator[tuple[str, str]]:
    """Walk ``value`` against a botocore shape, yielding ``(field path, message)``.

    botocore's ParamValidator stops at the first problem per value and gives no
    hints; this walk uses the same model, reports every problem, and suggests
    the member a typo was meant to be.
    """
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            yield where, f"must be an object, not {_type_name(value)}"
            return
        for required in shape.required_members:
            if required not in value:
                yield _join(where, required), "required field is missing"
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                yield _join(where, key), "unknown field" + _hint(key, shape.members)
            else:
                yield from validate_request(item, member, _join(where, key))
    elif kind == "list":
        if not isinstance(value, list):
            yield where, f"must be a list, not {_type_name(value)}"
            return
        for index, item in enumerate(value):
            yield from validate_request(item, shape.member, f"{where}[{index}]")
    elif kind == "map":
        if not isinstance(value, dict):
            yield where, f"must be an object, not {_type_name(value)}"
            return
        for key, item in value.items():
            if not isinstance(key, str):
                yield where, f"keys must be strings, not {_type_name(key)}"
            yield from validate_request(item, shape.value, f"{where}.{key}")
    elif kind == "string":
        if not isinstance(value, str):
            yield where, f"must be a string, not {_type_name(value)}"
            return
        enum = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            yield where, f"{value!r} is not one of {', '.join(enum)}" + _hint(value, enum)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            yield where, f"must be an integer, not {_type_name(value)}"
        elif "min" in shape.metadata and value < shape.metadata["min"]:
            yield where, f"must be at least {shape.metadata['min']}"
    elif kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            yield where, f"must be a number, not {_type_name(value)}"
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


def _semantic_checks(kind: Kind, request: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """What the model cannot say but AWS (or our tagging) will reject."""
    name_field = "jobName" if kind == "job" else "jobDefinitionName"
    name = request.get(name_field)
    if isinstance(name, str) and not _NAME.match(name):
        yield (
            name_field,
            (
                "must be 1-128 letters, digits, hyphens or underscores, starting with a letter "
                "or digit"
            ),
        )
    tags = request.get("tags")
    if isinstance(tags, dict):
        for key in tags:
            if isinstance(key, str) and key.startswith(TAG_PREFIX):
                yield f"tags.{key}", f"the {TAG_PREFIX} prefix is reserved for the controller"
        if len(tags) > MAX_TAGS - RESERVED_TAG_COUNT:
            yield (
                "tags",
                (
                    f"{len(tags)} tags; at most {MAX_TAGS - RESERVED_TAG_COUNT} leave room for "
                    f"the controller's {RESERVED_TAG_COUNT} (AWS allows {MAX_TAGS})"
                ),
            )
    if kind == "job":
        array = request.get("arrayProperties")
        if isinstance(array, dict) and isinstance(array.get("size"), int):
            size = array["size"]
            if not 2 <= size <= 10_000:
                yield "arrayProperties.size", "must be between 2 and 10000"


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
        if envelope_errors:
            return envelope_errors
        kind: Kind = ENVELOPE_KIND[str(kind_name)]
        request = document["spec"]
        options_raw = document.get("options") or {}
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
    problems += list(_semantic_checks(kind, request)) if not problems else []
    errors = [ManifestError(path, prefix + where, message) for where, message in problems]

    options: JobOptions | DefinitionOptions
    try:
        model = JobOptions if kind == "job" else DefinitionOptions
        options = model.model_validate(options_raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"])
            errors.append(ManifestError(path, f"options.{loc}", err["msg"]))
        options = JobOptions() if kind == "job" else DefinitionOptions()
    if isinstance(options, JobOptions) and options.schedule is not None:
        name = request.get("jobName")
        if isinstance(name, str) and len(name) > MAX_TEMPLATE_NAME:
            errors.append(
                ManifestError(
                    path,
                    prefix + "jobName",
                    f"a scheduled job's name may have at most {MAX_TEMPLATE_NAME} characters: "
                    "each run is named <jobName>-YYYYMMDDTHHMMZ and AWS allows 128",
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
