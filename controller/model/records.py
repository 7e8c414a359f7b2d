"""What the ledger remembers, as plain values (pure: the planner reads these)."""

from __future__ import annotations

import time
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
    # When AWS last returned this run (DescribeJobs), and since when reads have not
    # returned it (0.0: visible, or never asked). AWS lists new jobs late: a run it does
    # not return is "not visible yet", never finished (see controller.engine.observe).
    seen_at: float = 0.0
    missing_since: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.queue, self.name)

    @property
    def not_visible(self) -> bool:
        """AWS did not return this run on the last read (its status is the last one seen)."""
        return self.missing_since > 0


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


@dataclass(frozen=True)
class StatusUpdate:
    """What one read of AWS said about one run we hold the ID of.

    ``seen``: AWS returned it, and ``status``/``reason``/``array_summary`` are fresh.
    Not seen: AWS did not return it (late listing, or a finished job aged out): the
    store keeps the last status and records since when it is missing.
    """

    job_id: str
    seen: bool
    status: str = ""
    reason: str | None = None
    array_summary: str | None = None  # JSON of arrayProperties.statusSummary


@dataclass(frozen=True)
class Fence:
    """A writer's proof of leadership, checked atomically with every claim it writes.

    The shared store's lease item ``name`` in ``table`` must still be held by
    ``holder`` in ``term`` (a number that grows with every change of leader), or the
    write fails: a deposed leader that wakes up late cannot submit anything.
    """

    table: str
    name: str
    holder: str
    term: int


@dataclass(frozen=True)
class Holder:
    """Who holds a writer lock, for the message a waiting writer shows."""

    host: str
    pid: int
    since: float  # epoch seconds
    purpose: str = ""  # the command: run, reconcile, ledger rebuild, ...

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        what = f"`{self.purpose}` " if self.purpose else ""
        return f"{what}on {self.host}, pid {self.pid}, since {when}"
