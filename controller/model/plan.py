"""Pure: pair desired with observed, then diff each pair into actions.

``(key, desired or None, observed or None)`` first (Argo CD's gitops-engine
shape), then one decision per pair:

* desired, nothing observed            -> submit / register
* desired, observed with the same hash -> nothing (even if it finished long ago)
* desired, observed with another hash  -> stop the old run if active (unless
  ``onChange: keep``), submit the new one; register a new definition revision
* nothing desired, observed            -> prune candidate: cancel (queued),
  terminate (starting/running), deregister — only for what carries our tags,
  never for a manifest that is merely invalid, and subject to the mass-prune
  guard
* observed state *unknown* (read failed, intent unsettled) -> wait, never act
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from controller.model.desired import DesiredDefinition, DesiredJob, DesiredState, JobKey
from controller.model.jobstatus import ACTIVE_STATUSES, QUEUED_STATUSES
from controller.model.records import DefinitionRecord, JobRecord

ActionName = Literal["register", "submit", "cancel", "terminate", "deregister"]
Phase = Literal["active", "finished", "absent", "unknown"]


@dataclass(frozen=True)
class ObservedJob:
    record: JobRecord
    # Fresh AWS status; None when it could not be read this pass. For a run AWS did
    # not return (``visible`` False) the last status seen: late is not gone.
    status: str | None
    visible: bool = True

    @property
    def phase(self) -> Phase:
        if self.record.state in ("rejected", "lost"):
            return "absent"
        if self.record.state != "submitted" or self.status is None:
            return "unknown"
        return "active" if self.status in ACTIVE_STATUSES else "finished"


@dataclass
class ObservedState:
    jobs: dict[JobKey, ObservedJob] = field(default_factory=dict)
    definitions: dict[str, list[DefinitionRecord]] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    action: ActionName
    kind: Literal["job", "job-definition"]
    name: str
    manifest: str
    queue: str = ""
    reason: str = ""
    aws_id: str = ""  # job ID or definition ARN acted on
    job: DesiredJob | None = None
    definition: DesiredDefinition | None = None
    # submit: the token of the key's current run this submission replaces (None: the key
    # has none). The ledger writes the intent only if that is still so, so of two writers
    # that planned from the same state only one can submit.
    replaces: str | None = None

    @property
    def is_prune(self) -> bool:
        return self.reason == "removed"

    def as_dict(self) -> dict[str, str]:
        out = {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "manifest": self.manifest,
            "reason": self.reason,
        }
        if self.queue:
            out["queue"] = self.queue
        if self.aws_id:
            out["id"] = self.aws_id
        return out


@dataclass(frozen=True)
class PlanOptions:
    prune: bool = True
    prune_max_jobs: int = 10
    prune_max_ratio: float = 0.5
    allow_mass_prune: bool = False


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    held: list[Action] = field(default_factory=list)
    held_reason: str = ""
    # Removed manifests whose job is over: bookkeeping only, no AWS call.
    retire: list[JobKey] = field(default_factory=list)
    # Re-added manifests whose earlier run matches: bookkeeping only.
    unretire: list[JobKey] = field(default_factory=list)
    # Renamed manifests (same identity, new path): the current run follows the file, so
    # an invalid file at the new path protects it as it did at the old one.
    moved: dict[JobKey, str] = field(default_factory=dict)
    # Keys left alone this pass and why (status unknown, ...).
    waiting: dict[str, str] = field(default_factory=dict)


def stop_action(observed: ObservedJob, manifest: str, reason: str) -> Action:
    """Cancel a queued run, terminate a starting/running one (CancelJob does nothing there)."""
    record = observed.record
    verb: ActionName = "cancel" if observed.status in QUEUED_STATUSES else "terminate"
    return Action(
        verb,
        "job",
        record.name,
        manifest,
        queue=record.queue,
        reason=reason,
        aws_id=record.job_id or "",
    )


def plan_actions(
    desired: DesiredState, observed: ObservedState, options: PlanOptions = PlanOptions()
) -> Plan:
    plan = Plan()
    registers: list[Action] = []
    stops: list[Action] = []
    submits: list[Action] = []
    prunes: list[Action] = []

    # --- definitions ---
    for name in sorted(desired.definitions.keys() | observed.definitions.keys()):
        want_definition = desired.definitions.get(name)
        revisions = observed.definitions.get(name, [])
        if want_definition is not None:
            if not revisions or revisions[-1].spec_hash != want_definition.spec_hash:
                registers.append(
                    Action(
                        "register",
                        "job-definition",
                        name,
                        want_definition.manifest,
                        reason="changed" if revisions else "new",
                        definition=want_definition,
                    )
                )
            continue
        for record in revisions:
            if record.manifest in desired.invalid_paths or not record.prune:
                continue
            prunes.append(
                Action(
                    "deregister",
                    "job-definition",
                    name,
                    record.manifest,
                    reason="removed",
                    aws_id=record.arn,
                )
            )

    # --- jobs ---
    for key in sorted(desired.jobs.keys() | observed.jobs.keys()):
        want = desired.jobs.get(key)
        have = observed.jobs.get(key)
        label = f"{key[0]}/{key[1]}"
        if want is not None:
            if have is not None and have.record.manifest != want.manifest:
                plan.moved[key] = want.manifest
            if have is None or have.phase == "absent":
                submits.append(_submit(want, "new" if have is None else "retry", have))
            elif have.phase == "unknown":
                plan.waiting[label] = "status of the current run is unknown"
            elif have.record.spec_hash == want.spec_hash:
                if have.record.retired:
                    plan.unretire.append(key)
            else:
                if have.phase == "active" and want.options.on_change == "replace":
                    stops.append(stop_action(have, have.record.manifest, "replaced"))
                submits.append(_submit(want, "changed", have))
            continue
        assert have is not None
        if have.record.retired or have.record.manifest in desired.invalid_paths:
            continue
        if have.phase == "active":
            if have.record.prune:
                prunes.append(stop_action(have, have.record.manifest, "removed"))
        elif have.phase == "unknown":
            plan.waiting[label] = "removed, but the status of its run is unknown"
        else:
            plan.retire.append(key)

    plan.actions = registers + stops + submits
    held_reason = _prune_guard(desired, observed, prunes, options)
    if held_reason:
        plan.held = prunes
        plan.held_reason = held_reason
    else:
        # Job prunes before deregistrations, so nothing queued loses its definition first.
        plan.actions += [a for a in prunes if a.kind == "job"]
        plan.actions += [a for a in prunes if a.kind == "job-definition"]
    return plan


def _submit(want: DesiredJob, reason: str, have: ObservedJob | None) -> Action:
    return Action(
        "submit",
        "job",
        want.name,
        want.manifest,
        queue=want.queue,
        reason=reason,
        job=want,
        replaces=have.record.token if have is not None else None,
    )


def _prune_guard(
    desired: DesiredState, observed: ObservedState, prunes: list[Action], options: PlanOptions
) -> str:
    """Why these prunes must wait for an acknowledgement, or '' to go ahead."""
    if not prunes:
        return ""
    if not options.prune:
        return "pruning is disabled (--no-prune): removals are reported only"
    if options.allow_mass_prune:
        return ""
    empty = not desired.jobs and not desired.definitions and not desired.invalid_paths
    if empty:
        return (
            "the repository holds no manifests at all; refusing to prune everything "
            "without --allow-mass-prune"
        )
    job_prunes = sum(1 for a in prunes if a.kind == "job")
    active = sum(1 for o in observed.jobs.values() if o.phase == "active")
    if job_prunes > options.prune_max_jobs and job_prunes > options.prune_max_ratio * active:
        return (
            f"this revision would stop {job_prunes} of {active} active jobs (more than "
            f"{options.prune_max_jobs} and more than {options.prune_max_ratio:.0%}); "
            "acknowledge with --allow-mass-prune"
        )
    return ""
