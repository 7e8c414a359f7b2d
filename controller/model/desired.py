"""Manifests -> DesiredState: identities, spec hashes, name-based dependencies.

Pure. A job's key is ``(jobQueue, jobName)`` with the queue as written (the
ledger's key, unchanged since the first release); manifests are compared by
:func:`controller.model.identity.job_identity`, so a queue written once as a
name and once as an ARN is one queue. A definition's identity is its
``jobDefinitionName``. The spec hash covers what the author wrote (request plus
the options that ask for a new run), so it is stable across passes and is what
decides "changed" — AWS's echo of a job is never compared.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from controller.model.identity import JobIdentity, job_identity
from controller.model.manifests import (
    DefinitionOptions,
    JobOptions,
    LoadResult,
    Manifest,
    ManifestError,
)

JobKey = tuple[str, str]  # (jobQueue, jobName)

# An AWS job ID is a UUID; array children add ":N".
_AWS_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(:\d+)?$")


def spec_hash(payload: Any) -> str:
    """sha256 of canonical JSON; the first 16 hex digits are plenty and fit a tag."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DesiredDefinition:
    name: str
    manifest: str
    request: dict[str, Any]
    spec_hash: str
    options: DefinitionOptions


@dataclass(frozen=True)
class DesiredJob:
    key: JobKey
    manifest: str
    request: dict[str, Any]
    spec_hash: str
    options: JobOptions
    # Upstream jobs of this repository, by identity, in dependsOn order.
    upstream: tuple[JobKey, ...] = ()

    @property
    def queue(self) -> str:
        return self.key[0]

    @property
    def name(self) -> str:
        return self.key[1]


@dataclass
class DesiredState:
    definitions: dict[str, DesiredDefinition] = field(default_factory=dict)
    jobs: dict[JobKey, DesiredJob] = field(default_factory=dict)
    errors: list[ManifestError] = field(default_factory=list)
    # Manifest paths that exist but are invalid: never treated as removed.
    invalid_paths: set[str] = field(default_factory=set)
    # Scheduled templates (options.schedule), never submitted themselves: filled by
    # controller.engine.schedules.expand_schedules, which puts one job per tick in ``jobs``.
    schedules: dict[JobKey, DesiredJob] = field(default_factory=dict)

    def submit_order(self) -> list[JobKey]:
        """Jobs with every upstream before its dependents (Kahn, stable by key)."""
        remaining = {key: set(job.upstream) for key, job in self.jobs.items()}
        order: list[JobKey] = []
        while remaining:
            ready = sorted(key for key, ups in remaining.items() if not ups & remaining.keys())
            if not ready:  # cycles were rejected in build_desired; never loop forever
                ready = sorted(remaining)
            for key in ready:
                order.append(key)
                del remaining[key]
        return order


def _job_hash(manifest: Manifest) -> str:
    assert isinstance(manifest.options, JobOptions)
    return spec_hash({"request": manifest.request, "rerun": manifest.options.rerun})


def build_desired(loaded: LoadResult) -> DesiredState:
    """Turn loaded manifests into the desired state, adding cross-file errors."""
    state = DesiredState(errors=list(loaded.errors), invalid_paths=set(loaded.invalid_paths))
    by_definition: dict[str, list[Manifest]] = defaultdict(list)
    by_job: dict[JobIdentity, list[Manifest]] = defaultdict(list)
    for manifest in loaded.manifests:
        if manifest.kind == "job":
            by_job[job_identity(str(manifest.request["jobQueue"]), manifest.name)].append(manifest)
        else:
            by_definition[manifest.name].append(manifest)

    def reject(manifest: Manifest, field_path: str, message: str) -> None:
        state.errors.append(ManifestError(manifest.path, field_path, message))
        state.invalid_paths.add(manifest.path)

    for name, group in sorted(by_definition.items()):
        if len(group) > 1:
            paths = ", ".join(sorted(m.path for m in group))
            for manifest in group:
                reject(
                    manifest, "jobDefinitionName", f"{name!r} is defined in several files: {paths}"
                )
            continue
        manifest = group[0]
        assert isinstance(manifest.options, DefinitionOptions)
        state.definitions[name] = DesiredDefinition(
            name=name,
            manifest=manifest.path,
            request=manifest.request,
            spec_hash=spec_hash(manifest.request),
            options=manifest.options,
        )

    unique: dict[JobKey, Manifest] = {}
    # Every job of the repository by name, valid or not (one key per identity), so a
    # dependency on an invalid manifest blocks its dependents instead of passing through.
    names: dict[str, list[JobKey]] = defaultdict(list)
    for identity, group in sorted(by_job.items()):
        keys = sorted({(str(m.request["jobQueue"]), m.name) for m in group})
        names[identity[1]].append(keys[0])
        if len(group) > 1:
            paths = ", ".join(sorted(m.path for m in group))
            written = " and ".join(repr(queue) for queue, _ in keys)
            how = f" (written as {written})" if len(keys) > 1 else ""
            for manifest in group:
                reject(
                    manifest,
                    "jobName",
                    f"job {identity[1]!r} appears more than once in queue {identity[0]!r}"
                    f"{how}: {paths}",
                )
            continue
        unique[keys[0]] = group[0]

    upstream: dict[JobKey, tuple[JobKey, ...]] = {}
    for key, manifest in unique.items():
        ups: list[JobKey] = []
        ok = True
        for index, dep in enumerate(manifest.request.get("dependsOn") or []):
            job_id = str(dep.get("jobId", ""))
            where = f"dependsOn[{index}].jobId"
            candidates = names.get(job_id, [])
            if len(candidates) == 1:
                if candidates[0] not in unique:
                    reject(manifest, where, f"depends on {job_id!r}, whose manifest is invalid")
                    ok = False
                elif getattr(unique[candidates[0]].options, "schedule", None) is not None:
                    # One run per tick: no single job ID to wait for (controller.engine.schedules).
                    reject(
                        manifest,
                        where,
                        f"{job_id!r} is a scheduled job (one run per tick); depend on a job "
                        "without options.schedule",
                    )
                    ok = False
                ups.append(candidates[0])
            elif len(candidates) > 1:
                queues = ", ".join(sorted(q for q, _ in candidates))
                reject(
                    manifest,
                    where,
                    f"{job_id!r} names jobs in several queues ({queues}); rename one of them",
                )
                ok = False
            elif not _AWS_JOB_ID.match(job_id):
                reject(
                    manifest,
                    where,
                    f"{job_id!r} is neither a job of this repository nor an AWS job ID",
                )
                ok = False
        if ok:
            upstream[key] = tuple(ups)

    for cycle in _cycles(upstream):
        paths = " -> ".join(unique[key].path for key in cycle)
        for key in set(cycle):
            reject(unique[key], "dependsOn", f"dependency cycle: {paths}")
            upstream.pop(key, None)

    # Dependents of rejected jobs are rejected too, transitively.
    changed = True
    while changed:
        changed = False
        for key, key_ups in list(upstream.items()):
            missing = [up for up in key_ups if up not in upstream]
            if missing:
                reject(unique[key], "dependsOn", f"upstream job {missing[0][1]!r} is not valid")
                del upstream[key]
                changed = True

    for key, resolved in upstream.items():
        manifest = unique[key]
        assert isinstance(manifest.options, JobOptions)
        state.jobs[key] = DesiredJob(
            key=key,
            manifest=manifest.path,
            request=manifest.request,
            spec_hash=_job_hash(manifest),
            options=manifest.options,
            upstream=resolved,
        )
    state.errors.sort(key=lambda e: (e.path, e.field))
    return state


def _cycles(graph: dict[JobKey, tuple[JobKey, ...]]) -> list[list[JobKey]]:
    """Each dependency cycle once, as the path that closes it."""
    white, grey, black = 0, 1, 2
    color: dict[JobKey, int] = dict.fromkeys(graph, white)
    found: list[list[JobKey]] = []
    for start in sorted(graph):
        if color[start] != white:
            continue
        stack: list[tuple[JobKey, int]] = [(start, 0)]
        path: list[JobKey] = []
        while stack:
            node, index = stack.pop()
            if index == 0:
                color[node] = grey
                path.append(node)
            children = [c for c in graph.get(node, ()) if c in graph]
            if index < len(children):
                stack.append((node, index + 1))
                child = children[index]
                if color[child] == grey:
                    found.append([*path[path.index(child) :], child])
                elif color[child] == white:
                    stack.append((child, 0))
            else:
                color[node] = black
                path.pop()
    return found
