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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.model.manifests import LoadResult, Manifest, ManifestError, parse_document

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


def _container(usage: Usage, container: Any, where: str) -> None:
    """A ``containerProperties``-shaped dict (also overrides and ECS containers)."""
    if not isinstance(container, dict):
        return
    for key, target in (("vcpus", usage.vcpus), ("memory", usage.memory)):
        value = _number(container.get(key))
        if value is not None:
            target.append((f"{where}.{key}", value))
    for index, requirement in enumerate(container.get("resourceRequirements") or []):
        if not isinstance(requirement, dict):
            continue
        kind = requirement.get("type")
        target_list = {"VCPU": usage.vcpus, "MEMORY": usage.memory, "GPU": usage.gpus}.get(
            str(kind)
        )
        # An amount that is not a finite number cannot be shown to fit a ceiling.
        value = _number(requirement.get("value"))
        value = math.inf if value is None else value
        if target_list is not None:
            target_list.append((f"{where}.resourceRequirements[{index}]", value))
    if isinstance(container.get("image"), str):
        usage.images.append((f"{where}.image", container["image"]))
    if isinstance(container.get("jobRoleArn"), str):
        usage.job_roles.append((f"{where}.jobRoleArn", container["jobRoleArn"]))
    if isinstance(container.get("executionRoleArn"), str):
        usage.execution_roles.append((f"{where}.executionRoleArn", container["executionRoleArn"]))


def _eks_container(usage: Usage, container: Any, where: str) -> None:
    if not isinstance(container, dict):
        return
    if isinstance(container.get("image"), str):
        usage.images.append((f"{where}.image", container["image"]))
    resources = container.get("resources")
    if not isinstance(resources, dict):
        return
    for side in ("limits", "requests"):
        values = resources.get(side)
        if not isinstance(values, dict):
            continue
        spot = f"{where}.resources.{side}"
        cpu = _EKS_CPU.match(str(values.get("cpu", "")))
        if cpu:
            usage.vcpus.append((f"{spot}.cpu", float(cpu.group(1)) / (1000 if cpu[2] else 1)))
        memory = _EKS_MEMORY.match(str(values.get("memory", "")))
        if memory:
            usage.memory.append((f"{spot}.memory", float(memory[1]) * _MIB[memory[2]]))
        gpu = _number(values.get("nvidia.com/gpu"))
        if gpu is not None:
            usage.gpus.append((f"{spot}.nvidia.com/gpu", gpu))


def _ecs_tasks(usage: Usage, tasks: Any, where: str) -> None:
    for t_index, task in enumerate(tasks if isinstance(tasks, list) else []):
        if not isinstance(task, dict):
            continue
        spot = f"{where}.taskProperties[{t_index}]"
        if isinstance(task.get("taskRoleArn"), str):
            usage.job_roles.append((f"{spot}.taskRoleArn", task["taskRoleArn"]))
        if isinstance(task.get("executionRoleArn"), str):
            usage.execution_roles.append((f"{spot}.executionRoleArn", task["executionRoleArn"]))
        for c_index, container in enumerate(task.get("containers") or []):
            _container(usage, container, f"{spot}.containers[{c_index}]")


def _timeout(usage: Usage, request: dict[str, Any], where: str) -> None:
    timeout = request.get("timeout")
    if isinstance(timeout, dict):
        value = _number(timeout.get("attemptDurationSeconds"))
        if value is not None:
            usage.timeouts.append((f"{where}timeout.attemptDurationSeconds", value))
            usage.has_timeout = True


def definition_usage(request: dict[str, Any], where: str = "") -> Usage:
    """What a RegisterJobDefinition request asks for."""
    usage = Usage(tags=dict(request.get("tags") or {}), where=where)
    usage.definitions.append((f"{where}jobDefinitionName", str(request.get("jobDefinitionName"))))
    _container(usage, request.get("containerProperties"), f"{where}containerProperties")
    ranges = (request.get("nodeProperties") or {}).get("nodeRangeProperties") or []
    for index, node_range in enumerate(ranges if isinstance(ranges, list) else []):
        if isinstance(node_range, dict):
            spot = f"{where}nodeProperties.nodeRangeProperties[{index}]"
            _container(usage, node_range.get("container"), f"{spot}.container")
            _ecs_tasks(usage, node_range.get("ecsProperties", {}).get("taskProperties"), spot)
    ecs = request.get("ecsProperties")
    if isinstance(ecs, dict):
        _ecs_tasks(usage, ecs.get("taskProperties"), f"{where}ecsProperties")
    eks = request.get("eksProperties")
    pod = eks.get("podProperties") if isinstance(eks, dict) else None
    if isinstance(pod, dict):
        for key in ("containers", "initContainers"):
            for index, container in enumerate(pod.get(key) or []):
                _eks_container(
                    usage, container, f"{where}eksProperties.podProperties.{key}[{index}]"
                )
    _timeout(usage, request, where)
    return usage


def _definition_name(reference: str) -> str:
    """``name``, ``name:3`` or a job-definition ARN -> ``name``."""
    if reference.startswith("arn:"):
        reference = reference.rsplit("/", 1)[-1]
    return reference.split(":", 1)[0]


def _resource_name(value: str) -> str:
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def job_usage(request: dict[str, Any], definition: Manifest | None, where: str = "") -> Usage:
    """What a SubmitJob request asks for, including what its managed definition gives it."""
    usage = Usage(tags=dict(request.get("tags") or {}), where=where)
    usage.queues.append((f"{where}jobQueue", str(request.get("jobQueue"))))
    usage.definitions.append((f"{where}jobDefinition", str(request.get("jobDefinition"))))
    _container(usage, request.get("containerOverrides"), f"{where}containerOverrides")
    node_overrides = (request.get("nodeOverrides") or {}).get("nodePropertyOverrides") or []
    for index, override in enumerate(node_overrides if isinstance(node_overrides, list) else []):
        if isinstance(override, dict):
            spot = f"{where}nodeOverrides.nodePropertyOverrides[{index}]"
            _container(usage, override.get("containerOverrides"), f"{spot}.containerOverrides")
    ecs = request.get("ecsPropertiesOverride")
    if isinstance(ecs, dict):
        _ecs_tasks(usage, ecs.get("taskProperties"), f"{where}ecsPropertiesOverride")
    array = request.get("arrayProperties")
    if isinstance(array, dict) and _number(array.get("size")) is not None:
        usage.array_size.append((f"{where}arrayProperties.size", float(array["size"])))
    _timeout(usage, request, where)
    if definition is not None:
        # The definition's values apply unless overridden; checking both is
        # exact for ceilings (the effective value is one of them) and for roles
        # and images (overrides cannot change those).
        usage.definition_known = True
        inherited = definition_usage(definition.request, definition.field_prefix)
        label = f"jobDefinition ({definition.path}: "
        for name in ("vcpus", "memory", "gpus", "images", "job_roles", "execution_roles"):
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
    ]
    for rule, values, patterns, noun in membership:
        if patterns is None:
            continue
        for where, value in values:
            checked = _definition_name(value) if rule == "definitionNames" else value
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
        reference = _definition_name(str(manifest.request.get("jobDefinition", "")))
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
