"""What the ledger remembers, as plain values (pure: the planner reads these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobRecord:
    token: str
    queue: str
    name: str
    manifest: str
    spec_hash: str
    revision: str
    author: str
    committed_at: float
    job_id: str | None
    state: str
    status: str | None
    status_reason: str | None
    array_summary: dict[str, int] | None
    prune: bool
    is_current: bool
    retired: bool
    created_at: float
    updated_at: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.queue, self.name)


@dataclass(frozen=True)
class DefinitionRecord:
    arn: str
    name: str
    revision: int
    manifest: str
    spec_hash: str
    commit_sha: str
    author: str
    prune: bool
    status: str


@dataclass(frozen=True)
class Provenance:
    """Which commit asked for an action."""

    revision: str
    author: str = ""
    committed_at: float = 0.0


@dataclass(frozen=True)
class ScheduleRow:
    """A schedule the ledger knows: its cron, since when, and the newest tick handled."""

    queue: str
    name: str
    manifest: str
    cron: str
    timezone: str
    since: float  # first seen (as now written): no earlier tick ever runs
    last_tick: float | None  # newest tick handled (run or skipped)
    active: bool


@dataclass(frozen=True)
class TickRow:
    """One decided cron tick of a schedule: run (as ``job_name``) or skipped."""

    queue: str
    name: str  # the template's jobName
    tick: float  # UTC epoch seconds
    job_name: str
    outcome: str  # run | skipped
    decided_at: float


@dataclass(frozen=True)
class ScheduleUpdate:
    """What one pass decided for one schedule (written with the others, all or nothing)."""

    queue: str
    name: str
    manifest: str
    cron: str
    timezone: str
    since: float
    last_tick: float | None  # None: keep the recorded one
    tick: TickRow | None  # the tick decided this pass, if any
