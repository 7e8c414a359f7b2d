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
from typing import Any, Protocol

from controller.model.records import (
    DefinitionRecord,
    JobRecord,
    Provenance,
    ScheduleRow,
    ScheduleUpdate,
    TickRow,
)


class LedgerError(Exception):
    """The ledger cannot be used; the message says what to do."""


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
        """No job and no definition ever recorded: a new store (or a lost one)."""
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
    ) -> None:
        """Durably, before SubmitJob: this run becomes the key's current one."""
        ...

    def record_submitted(self, token: str, job_id: str, status: str = "SUBMITTED") -> None: ...

    def record_outcome(self, token: str, state: str, message: str) -> None:
        """Close an intent that did not make a job: ``rejected`` or ``lost``."""
        ...

    def update_statuses(self, updates: list[tuple[str, str, str | None, str | None]]) -> None:
        """``(job_id, status, reason, array summary JSON)``, all at once."""
        ...

    def record_status(self, job_id: str, status: str, reason: str | None = None) -> None:
        """One job's status as seen right after we acted on it (array summary untouched)."""
        ...

    def set_retired(self, queue: str, name: str, retired: bool) -> None:
        """Mark a key's current run as belonging to a removed manifest (or not any more)."""
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
