"""The ledger's contract: what the engine, the commands and the service may ask of a store.

AWS Batch has no idempotency token and forgets finished jobs after about a week,
so the ledger is what stops a finished job from running twice. Every submission
is written as an *intent* (with a unique submission token that is also tagged on
the job) before SubmitJob and completed with the job ID after; an intent left
open by a crash or a lost reply is settled against AWS before anything is
resubmitted (``controller.engine.observe.settle_intents``).

:class:`Ledger` is a :class:`typing.Protocol`: one implementation per store
(:mod:`controller.state.sqlite` embedded). Everything outside ``controller.state``
talks to a store only through these methods and the plain values of
:mod:`controller.model.records`; no SQL (or item) leaves the store's module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from controller.model.records import (
    DefinitionRecord,
    Fence,
    Holder,
    JobRecord,
    Provenance,
    ScheduleRow,
    ScheduleUpdate,
    StatusUpdate,
    TickRow,
)

# ``record_intent(replaces=ANY_RUN)``: write without comparing the key's current run
# (ledger rebuild, which holds the writer lock and replays history oldest first).
ANY_RUN: Final = "*"
# Meta key set before a store's first AWS write that leaves no record of its own first
# (RegisterJobDefinition): a ledger whose first pass crashed right after registering is
# not "empty", so the lost-ledger guard adopts that definition instead of refusing.
WRITES_SENT_META: Final = "writes_sent"


class LedgerError(Exception):
    """The ledger cannot be used; the message says what to do."""


class ClaimConflict(LedgerError):
    """Another writer changed this job key's current run since the plan was made: its
    claim won, this submission must not be sent."""


class Fenced(LedgerError):
    """This writer's fencing token is stale: another replica leads now."""


class WriterBusy(LedgerError):
    """Another process holds the store's writer lock (``holder`` says who, if known)."""

    def __init__(self, message: str, holder: Holder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class WriterLock(Protocol):
    """The store's single-writer lock: every command that writes AWS or the ledger holds
    it for its whole pass (SQLite: an OS lock on the file; DynamoDB: the lease)."""

    def acquire(self, wait: float = 0.0) -> Fence | None:
        """Take the lock, waiting at most ``wait`` seconds; the fence to write with (None
        where the lock itself excludes every other writer). Raises :class:`WriterBusy`."""
        ...

    def release(self) -> None: ...

    def holder(self) -> Holder | None:
        """Who holds the lock now, if anyone (for messages)."""
        ...


@dataclass
class PruneResult:
    """What a retention prune deleted (or, in a dry run, would delete)."""

    jobs: int = 0
    ticks: int = 0
    definitions: int = 0
    actions: int = 0
    passes: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


class Ledger(Protocol):
    """A durable record of registrations, submissions, schedules and the audit trail."""

    @property
    def location(self) -> str:
        """Where the store lives, as a user would pass it to ``--state``."""
        ...

    def close(self) -> None: ...

    def writer_lock(self, purpose: str) -> WriterLock:
        """The lock a writing command holds for its whole pass (``purpose`` names it)."""
        ...

    def backup(self, destination: Path) -> None:
        """A consistent copy of the whole ledger, safe while a writer is running."""
        ...

    # --- meta: small named values (last applied revision, markers) ---
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    # --- jobs ---
    def current_jobs(self) -> dict[tuple[str, str], JobRecord]:
        """The current run of every job key ever submitted (retired ones included)."""
        ...

    def job_status_counts(self) -> dict[tuple[str, str], int]:
        """``(queue, status) -> count`` of current, not retired runs with a status."""
        ...

    def jobs(self, *, include_retired: bool = True) -> list[JobRecord]:
        """Every run, oldest first."""
        ...

    def is_empty(self) -> bool:
        """No job, no definition and no write ever recorded (:data:`WRITES_SENT_META`):
        a new store, or a lost one."""
        ...

    def open_intents(self) -> list[JobRecord]:
        """Submissions whose outcome is not known yet."""
        ...

    def job_by_id(self, job_id: str) -> JobRecord | None: ...

    def jobs_matching(
        self, *, revision_prefix: str | None = None, manifest: str | None = None
    ) -> list[JobRecord]:
        """Runs (oldest first) from commits starting with ``revision_prefix`` and/or of
        ``manifest``: the audit queries."""
        ...

    def record_intent(
        self,
        *,
        token: str,
        queue: str,
        name: str,
        manifest: str,
        spec_hash: str,
        prune: bool,
        provenance: Provenance,
        replaces: str | None = ANY_RUN,
        fence: Fence | None = None,
    ) -> None:
        """Durably, before SubmitJob: this run becomes the key's current one.

        A claim only one writer can win: ``replaces`` is the token of the current run
        the plan saw (None: the key had none); if the key's current run is another one
        now, :class:`ClaimConflict` is raised and nothing is written. ``fence`` (shared
        stores) is checked in the same atomic write (:class:`Fenced`).
        """
        ...

    def record_submitted(self, token: str, job_id: str, status: str = "SUBMITTED") -> None: ...

    def record_outcome(self, token: str, state: str, message: str) -> None:
        """Close an intent that did not make a job: ``rejected`` or ``lost``."""
        ...

    def update_statuses(self, updates: list[StatusUpdate], now: float) -> None:
        """One read of AWS, all at once: fresh statuses for the runs it returned
        (``seen_at=now``), ``missing_since`` for those it did not (status kept)."""
        ...

    def record_status(self, job_id: str, status: str, reason: str | None = None) -> None:
        """One job's status as seen right after we acted on it (array summary untouched)."""
        ...

    def set_retired(self, queue: str, name: str, retired: bool) -> None:
        """Mark a key's current run as belonging to a removed manifest (or not any more)."""
        ...

    def set_manifest(self, queue: str, name: str, manifest: str) -> None:
        """The key's manifest moved to ``manifest`` (a rename): its current run follows."""
        ...

    # --- definitions ---
    def active_definitions(self) -> dict[str, list[DefinitionRecord]]:
        """ACTIVE revisions we registered, by name, oldest first."""
        ...

    def record_definition(
        self,
        *,
        arn: str,
        name: str,
        revision: int,
        manifest: str,
        spec_hash: str,
        prune: bool,
        provenance: Provenance,
    ) -> None: ...

    def record_deregistered(self, arn: str) -> None: ...

    # --- audit ---
    def record_action(
        self,
        *,
        pass_id: str,
        action: str,
        kind: str,
        name: str,
        queue: str,
        manifest: str,
        provenance: Provenance,
        result: str,
        aws_id: str,
        message: str,
    ) -> None: ...

    def actions(
        self,
        *,
        revision: str | None = None,
        manifest: str | None = None,
        aws_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Audit rows, oldest first."""
        ...

    def start_pass(self, pass_id: str) -> None: ...

    def finish_pass(
        self, pass_id: str, revision: str, result: str, summary: dict[str, Any]
    ) -> None: ...

    # --- schedules ---
    def schedules(self) -> dict[tuple[str, str], ScheduleRow]: ...

    def ticks(self, queue: str | None = None, name: str | None = None) -> list[TickRow]:
        """Decided ticks, oldest first (of one schedule when ``queue`` and ``name`` are given)."""
        ...

    def open_ticks(self) -> dict[tuple[str, str], list[float]]:
        """Run ticks whose run is not over (no record yet, intent, active, rejected)."""
        ...

    def record_schedules(
        self, updates: list[ScheduleUpdate], removed: list[tuple[str, str]]
    ) -> None:
        """One pass's schedule decisions and removed schedules, all or nothing."""
        ...

    # --- retention ---
    def prune(self, cutoff: float, *, dry_run: bool = False) -> PruneResult:
        """Delete records last updated before ``cutoff`` (epoch seconds) that can never
        matter to the planner again (rules in :mod:`controller.state.retention`)."""
        ...
