"""Team policy: which queues, roles, images, sizes and names a path of the repository may use.

The policy lives in the manifest repository (``.batch-gitops/policy.yaml``)::

    version: 1
    unmatched: deny            # manifests under no team's path: deny (default) or allow
    teams:
      - name: finance
        paths: [teams/finance/]
        jobQueues: [finance-*]                     # fnmatch patterns, name or ARN
        jobRoleArns: ["arn:aws:iam::*:role/finance-*"]
        executionRoleArns: ["arn:aws:iam::*:role/ecsTaskExecutionRole"]
        imageRegistries: [123456789012.dkr.ecr.*.amazonaws.com, public.ecr.aws/finance]
        definitionNames: [risk-*]
        serviceAccountNames: [finance-*]           # EKS pods (IRSA roles); none set: "default"
        requiredTags: [CostCenter, Project]
        limits: {vcpus: 16, memoryMiB: 65536, gpus: 0, arraySize: 100, timeoutSeconds: 86400}

A field left out is unrestricted; an empty list allows nothing. The longest
matching path prefix decides the team. A job is checked on its own request and,
where it names a job definition managed in the same repository, on what that
definition gives it (a job's ``containerOverrides`` replace the definition's
values, so both sides are checked against the ceilings).

Pure: callers hand in the policy file's bytes and loaded manifests. A violation
is a :class:`ManifestError` on the manifest (file, field, rule, policy line) and
makes only that manifest invalid — so, like any invalid manifest, it is never
pruned either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

import yaml
from botocore.model import Shape, StructureShape
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.model.identity import definition_name
from controller.model.manifests import (
    Kind,
    LoadResult,
    Manifest,
    ManifestError,
    input_shape,
    parse_document,
)

POLICY_FILE = ".batch-gitops/policy.yaml"

Path = tuple[str | int, ...]


class Ceilings(BaseModel):
    """Upper bounds; a job's effective value (override, else its definition's) must fit."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    vcpus: float | None = Field(None, gt=0, description="vCPUs per container.")
    memory_mib: int | None = Field(None, alias="memoryMiB", gt=0, description="MiB per container.")
    gpus: int | None = Field(None, ge=0, description="GPUs per container.")
    array_size: int | None = Field(None, alias="arraySize", ge=0, description="Array job size.")
    timeout_seconds: int | None = Field(
        None, alias="timeoutSeconds", gt=0, description="attemptDurationSeconds."
    )


class TeamRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    paths: list[str] = Field(min_length=1, description="Repository path prefixes.")
    job_queues: list[str] | None = Field(None, alias="jobQueues")
    job_role_arns: list[str] | None = Field(None, alias="jobRoleArns")
    execution_role_arns: list[str] | None = Field(None, alias="executionRoleArns")
    image_registries: list[str] | None = Field(None, alias="imageRegistries")
    definition_names: list[str] | None = Field(None, alias="definitionNames")
    service_account_names: list[str] | None = Field(
        None,
        alias="serviceAccountNames",
        description="EKS pods' service accounts (their IAM role through IRSA); a pod "
        "without serviceAccountName runs as 'default'.",
    )
    required_tags: list[str] = Field(default_factory=list, alias="requiredTags")
    limits: Ceilings = Field(default_factory=Ceilings)


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    unmatched: Literal["deny", "allow"] = "deny"
    teams: list[TeamRule] = Field(default_factory=list)


@dataclass(frozen=True)
class Policy:
    """A validated policy with the line of every field, for messages."""

    document: PolicyDocument
    path: str = POLICY_FILE
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, *where: str | int) -> int:
        """Line of the deepest recorded prefix of ``where`` (1-based)."""
        for end in range(len(where), -1, -1):
            if where[:end] in self.lines:
                return self.lines[where[:end]]
        return 1

    def team_for(self, path: str) -> tuple[int, TeamRule] | None:
        best: tuple[int, int, TeamRule] | None = None
        for index, team in enumerate(self.document.teams):
            for prefix in team.paths:
                if path.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), index, team)
        return (best[1], best[2]) if best else None


def _record_lines(node: yaml.Node, where: Path, lines: dict[Path, int]) -> None:
    lines[where] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                lines[(*where, key.value)] = key.start_mark.line + 1
                _record_lines(value, (*where, key.value), lines)
                lines[(*where, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*where, index), lines)


def _aliases(loc: tuple[Any, ...]) -> Path:
    """pydantic's loc uses field aliases already; keep str/int parts only."""
    return tuple(part for part in loc if isinstance(part, str | int))


def load_policy(path: str, raw: bytes) -> Policy | list[ManifestError]:
    """Parse and validate the policy file; errors name the file, field and line."""
    try:
        data = parse_document(path, raw)  # same size/depth/alias bounds as manifests
    except ValueError as exc:
        return [ManifestError(path, "", str(exc))]
    lines: dict[Path, int] = {}
    try:
        node = yaml.compose(raw.decode("utf-8-sig"), Loader=yaml.SafeLoader)
        if node is not None:
            _record_lines(node, (), lines)
    except yaml.YAMLError:
        pass  # parse_document accepted it (e.g. JSON): no line numbers then
    if data is None:
        data = {}
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = _aliases(err["loc"])
            dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc)
            dotted = dotted.replace(".[", "[")
            line = next(
                (lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in lines), 1
            )
            errors.append(ManifestError(path, dotted, f"line {line}: {err['msg']}"))
        return errors
    return Policy(document=document, path=path, lines=lines)


# --- what a manifest asks for ---


@dataclass
class Usage:
    """Every value of one manifest that a rule looks at, with the field it came from."""

    queues: list[tuple[str, str]] = field(default_factory=list)
    job_roles: list[tuple[str, str]] = field(default_factory=list)
    execution_roles: list[tuple[str, str]] = field(default_factory=list)
    service_accounts: list[tuple[str, str]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)
    definitions: list[tuple[str, str]] = field(default_factory=list)
    vcpus: list[tuple[str, float]] = field(default_factory=list)
    memory: list[tuple[str, float]] = field(default_factory=list)
    gpus: list[tuple[str, float]] = field(default_factory=list)
    array_size: list[tuple[str, float]] = field(default_factory=list)
    timeouts: list[tuple[str, float]] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)
    has_timeout: bool = False
    # Where the request sits in its file ("spec." in the envelope form).
    where: str = ""
    # A job whose definition is managed here: its full effective values are known.
    definition_known: bool = False


_EKS_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_EKS_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MIB = {
    None: 1 / 2**20,
    "Ki": 1 / 1024,
    "Mi": 1,
    "Gi": 1024,
    "Ti": 1024**2,
    "K": 1e3 / 2**20,
    "M": 1e6 / 2**20,
    "G": 1e9 / 2**20,
    "T": 1e12 / 2**20,
}


def _number(value: Any) -> float | None:
    """A finite number, or None ("INFINITY" and "nan" are strings AWS would reject)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


# Members that hold what a rule governs, wherever they sit in a request: a walk over
# botocore's shapes finds each of them in definitions, overrides, ECS tasks, EKS pods
# and node ranges alike, so a place AWS adds later under a known name is governed too
# (tests/policy/test_policy_every_place.py fails on a new name nobody decided on).
JOB_ROLE_MEMBERS = frozenset({"jobRoleArn", "taskRoleArn"})
EXECUTION_ROLE_MEMBERS = frozenset({"executionRoleArn"})
IMAGE_MEMBERS = frozenset({"image"})
SERVICE_ACCOUNT_MEMBERS = frozenset({"serviceAccountName"})
AMOUNT_MEMBERS = frozenset({"vcpus", "memory", "resourceRequirements", "resources"})
GOVERNED_MEMBERS = (
    JOB_ROLE_MEMBERS | EXECUTION_ROLE_MEMBERS | IMAGE_MEMBERS | SERVICE_ACCOUNT_MEMBERS
) | AMOUNT_MEMBERS
# An EKS pod without serviceAccountName runs as its namespace's "default" account.
DEFAULT_SERVICE_ACCOUNT = "default"


def _members(value: Any, shape: Shape, where: str) -> Iterator[tuple[str, str, Any, str]]:
    """``(structure, member, value, field)`` for every structure member set in ``value``."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for key, item in value.items():
            child = shape.members.get(key)
            if child is None:
                continue
            spot = f"{where}.{key}" if where else key
            yield shape.name, key, item, spot
            yield from _members(item, child, spot)
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _members(item, shape.member, f"{where}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            yield from _members(item, shape.value, f"{where}.{key}")


def _requirements(usage: Usage, requirements: Any, where: str) -> None:
    """``resourceRequirements``: ``[{type: VCPU|MEMORY|GPU, value: "4"}]``."""
    for index, requirement in enumerate(requirements if isinstance(requirements, list) else []):
        if not isinstance(requirement, dict):
            continue
        target = {"VCPU": usage.vcpus, "MEMORY": usage.memory, "GPU": usage.gpus}.get(
            str(requirement.get("type"))
        )
        # An amount that is not a finite number cannot be shown to fit a ceiling.
        value = _number(requirement.get("value"))
        if target is not None:
            target.append((f"{where}[{index}]", math.inf if value is None else value))


def _eks_resources(usage: Usage, resources: Any, where: str) -> None:
    """EKS ``resources: {limits: {cpu, memory, nvidia.com/gpu}, requests: {...}}``."""
    if not isinstance(resources, dict):
        return
    for side in ("limits", "requests"):
        values = resources.get(side)
        if not isinstance(values, dict):
            continue
        spot = f"{where}.{side}"
        if "cpu" in values:
            cpu = _EKS_CPU.match(str(values["cpu"]))
            amount = float(cpu[1]) / (1000 if cpu[2] else 1) if cpu else math.inf
            usage.vcpus.append((f"{spot}.cpu", amount))
        if "memory" in values:
            memory = _EKS_MEMORY.match(str(values["memory"]))
            amount = float(memory[1]) * _MIB[memory[2]] if memory else math.inf
            usage.memory.append((f"{spot}.memory", amount))
        if "nvidia.com/gpu" in values:
            gpu = _number(values["nvidia.com/gpu"])
            usage.gpus.append((f"{spot}.nvidia.com/gpu", math.inf if gpu is None else gpu))


def _collect(usage: Usage, request: dict[str, Any], kind: Kind, where: str) -> None:
    """Every governed value of a request, by walking it against its botocore shape."""
    for owner, member, value, spot in _members(request, input_shape(kind), ""):
        field_path = where + spot
        if member in IMAGE_MEMBERS and isinstance(value, str):
            usage.images.append((field_path, value))
        elif member in JOB_ROLE_MEMBERS and isinstance(value, str):
            usage.job_roles.append((field_path, value))
        elif member in EXECUTION_ROLE_MEMBERS and isinstance(value, str):
            usage.execution_roles.append((field_path, value))
        elif member in SERVICE_ACCOUNT_MEMBERS and isinstance(value, str):
            usage.service_accounts.append((field_path, value))
        elif member in ("vcpus", "memory"):
            amount = _number(value)
            if amount is not None:
                target = usage.vcpus if member == "vcpus" else usage.memory
                target.append((field_path, amount))
        elif member == "resourceRequirements":
            _requirements(usage, value, field_path)
        elif member == "resources":
            _eks_resources(usage, value, field_path)
        elif member == "podProperties" and isinstance(value, dict) and kind == "job-definition":
            if "serviceAccountName" not in value:
                usage.service_accounts.append(
                    (f"{field_path}.serviceAccountName", DEFAULT_SERVICE_ACCOUNT)
                )
        elif (owner, member) == ("ArrayProperties", "size"):
            amount = _number(value)
            if amount is not None:
                usage.array_size.append((field_path, amount))
        elif (owner, member) == ("JobTimeout", "attemptDurationSeconds"):
            amount = _number(value)
            if amount is not None:
                usage.timeouts.append((field_path, amount))
                usage.has_timeout = True


def definition_usage(request: dict[str, Any], where: str = "") -> Usage:
    """What a RegisterJobDefinition request asks for."""
    usage = Usage(tags=dict(request.get("tags") or {}), where=where)
    usage.definitions.append((f"{where}jobDefinitionName", str(request.get("jobDefinitionName"))))
    _collect(usage, request, "job-definition", where)
    return usage


def job_usage(request: dict[str, Any], definition: Manifest | None, where: str = "") -> Usage:
    """What a SubmitJob request asks for, including what its managed definition gives it."""
    usage = Usage(tags=dict(request.get("tags") or {}), where=where)
    # As written: a pattern may be a name or an ARN; _pattern_allowed also tries the name.
    usage.queues.append((f"{where}jobQueue", str(request.get("jobQueue"))))
    usage.definitions.append((f"{where}jobDefinition", str(request.get("jobDefinition"))))
    _collect(usage, request, "job", where)
    if definition is not None:
        # The definition's values apply unless overridden; checking both is
        # exact for ceilings (the effective value is one of them) and safe for
        # roles, service accounts and images (both must be allowed).
        usage.definition_known = True
        inherited = definition_usage(definition.request, definition.field_prefix)
        label = f"jobDefinition ({definition.path}: "
        for name in (
            "vcpus",
            "memory",
            "gpus",
            "images",
            "job_roles",
            "execution_roles",
            "service_accounts",
        ):
            mine: list[Any] = getattr(usage, name)
            if name in ("vcpus", "memory", "gpus") and mine:
                continue  # overridden: the job's own value is the effective one
            mine.extend((f"{label}{spot})", value) for spot, value in getattr(inherited, name))
        if not usage.has_timeout:
            usage.timeouts.extend((f"{label}{spot})", v) for spot, v in inherited.timeouts)
            usage.has_timeout = inherited.has_timeout
    return usage


# --- the rules ---


def _registry_allowed(image: str, allowed: list[str]) -> bool:
    first, _, rest = image.partition("/")
    registry = first if rest and ("." in first or ":" in first or first == "localhost") else ""
    registry = registry or "docker.io"
    for entry in allowed:
        if "/" in entry:
            if image.startswith(entry.rstrip("/") + "/"):
                return True
        elif fnmatchcase(registry, entry):
            return True
    return False


def _resource_name(value: str) -> str:
    """An ARN's last path segment (an IAM role's name), for patterns written as names."""
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def _pattern_allowed(value: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(value, p) or fnmatchcase(_resource_name(value), p) for p in patterns)


def _check(
    policy: Policy, team_index: int, team: TeamRule, usage: Usage, kind: str
) -> Iterator[tuple[str, str]]:
    """``(field, message)`` for every rule ``usage`` breaks."""

    def cite(rule: str, *sub: str) -> str:
        return f"[{policy.path}:{policy.line('teams', team_index, rule, *sub)}]"

    def listed(patterns: list[str]) -> str:
        return ", ".join(patterns) if patterns else "none"

    name = team.name
    membership: list[tuple[str, list[tuple[str, str]], list[str] | None, str]] = [
        ("jobQueues", usage.queues, team.job_queues, "job queue"),
        ("jobRoleArns", usage.job_roles, team.job_role_arns, "job role"),
        ("executionRoleArns", usage.execution_roles, team.execution_role_arns, "execution role"),
        ("definitionNames", usage.definitions, team.definition_names, "job definition"),
        (
            "serviceAccountNames",
            usage.service_accounts,
            team.service_account_names,
            "EKS service account",
        ),
    ]
    for rule, values, patterns, noun in membership:
        if patterns is None:
            continue
        for where, value in values:
            checked = definition_name(value) if rule == "definitionNames" else value
            if not _pattern_allowed(checked, patterns):
                yield (
                    where,
                    f"policy {rule}: {noun} {checked!r} is not allowed for team {name!r} "
                    f"(allowed: {listed(patterns)}) {cite(rule)}",
                )
    if team.image_registries is not None:
        for where, image in usage.images:
            if not _registry_allowed(image, team.image_registries):
                yield (
                    where,
                    f"policy imageRegistries: image {image!r} is not from a registry allowed "
                    f"for team {name!r} (allowed: {listed(team.image_registries)}) "
                    f"{cite('imageRegistries')}",
                )
    ceilings: list[tuple[str, str, float | None, list[tuple[str, float]], str]] = [
        ("vcpus", "vcpus", team.limits.vcpus, usage.vcpus, "vCPUs"),
        ("memoryMiB", "memory", team.limits.memory_mib, usage.memory, "MiB of memory"),
        ("gpus", "gpus", team.limits.gpus, usage.gpus, "GPUs"),
        ("arraySize", "array", team.limits.array_size, usage.array_size, "array children"),
        ("timeoutSeconds", "timeout", team.limits.timeout_seconds, usage.timeouts, "seconds"),
    ]
    for rule, _, ceiling, amounts, unit in ceilings:
        if ceiling is None:
            continue
        for spot, amount in amounts:
            if amount > ceiling:
                shown: Any = amount
                if not math.isfinite(amount):
                    shown = "an unreadable amount of"
                elif amount == int(amount):
                    shown = int(amount)
                yield (
                    spot,
                    f"policy limits.{rule}: asks for {shown} {unit}; team {name!r} may use at "
                    f"most {ceiling:g} {cite('limits', rule)}",
                )
    known = kind == "job" and usage.definition_known
    if team.limits.timeout_seconds is not None and known and not usage.has_timeout:
        yield (
            f"{usage.where}timeout",
            f"policy limits.timeoutSeconds: no timeout is set (neither the job nor its "
            f"definition); team {name!r} must set timeout.attemptDurationSeconds <= "
            f"{team.limits.timeout_seconds} {cite('limits', 'timeoutSeconds')}",
        )
    missing = [tag for tag in team.required_tags if not str(usage.tags.get(tag, "")).strip()]
    if missing:
        yield (
            f"{usage.where}tags",
            f"policy requiredTags: missing tag(s) {', '.join(missing)} required for team "
            f"{name!r} {cite('requiredTags')}",
        )


def check_manifest(
    policy: Policy,
    manifest: Manifest,
    definitions: dict[str, Manifest] | None = None,
    path_prefix: str = "",
) -> list[ManifestError]:
    """Every policy violation of one manifest (empty: allowed)."""
    match = policy.team_for(path_prefix + manifest.path)
    if match is None:
        if policy.document.unmatched == "allow":
            return []
        return [
            ManifestError(
                manifest.path,
                "",
                f"policy unmatched: no team in {policy.path} owns this path; add its directory "
                f"to a team's paths [{policy.path}:{policy.line('unmatched')}]",
            )
        ]
    team_index, team = match
    if manifest.kind == "job":
        reference = definition_name(str(manifest.request.get("jobDefinition", "")))
        definition = (definitions or {}).get(reference)
        usage = job_usage(manifest.request, definition, manifest.field_prefix)
    else:
        usage = definition_usage(manifest.request, manifest.field_prefix)
    return [
        ManifestError(manifest.path, where, message)
        for where, message in _check(policy, team_index, team, usage, manifest.kind)
    ]


def enforce(policy: Policy, loaded: LoadResult, path_prefix: str = "") -> LoadResult:
    """A new LoadResult where every manifest that breaks the policy is invalid."""
    definitions = {m.name: m for m in loaded.manifests if m.kind == "job-definition"}
    result = LoadResult(errors=list(loaded.errors), invalid_paths=set(loaded.invalid_paths))
    for manifest in loaded.manifests:
        violations = check_manifest(policy, manifest, definitions, path_prefix)
        if violations:
            result.errors.extend(violations)
            result.invalid_paths.add(manifest.path)
        else:
            result.manifests.append(manifest)
    return result


def block_all(loaded: LoadResult, errors: list[ManifestError]) -> LoadResult:
    """An invalid policy allows nothing: every manifest becomes invalid (so nothing is
    applied and nothing is pruned) and the policy's own errors are reported."""
    result = LoadResult(errors=[*loaded.errors, *errors], invalid_paths=set(loaded.invalid_paths))
    source = errors[0].path if errors else POLICY_FILE
    for manifest in loaded.manifests:
        result.invalid_paths.add(manifest.path)
        result.errors.append(
            ManifestError(manifest.path, "", f"policy: blocked until {source} is valid")
        )
    return result
