"""The live picture of managed jobs: array progress, dependency chains, blocked jobs.

``collect`` reads the ledger (refreshing active runs from AWS unless offline)
and asks DescribeJobs once per job for what the ledger does not keep — the
``dependsOn`` job IDs and an array parent's ``statusSummary``; ``build_views``
is pure and turns records plus that into :class:`JobView` rows, ordered so each
dependency chain reads top-down (every upstream before its dependents).

A job is **blocked** when it has not succeeded or started and an upstream job,
directly or through others, FAILED: it will not run (AWS fails or strands
such jobs), so watchers stop waiting for it.

Used by ``batch-gitops status`` (controller.cli.status).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from controller.aws.batch import BatchApi, BatchError
from controller.engine.observe import refresh_statuses
from controller.model.jobstatus import ACTIVE_STATUSES, RUNNING_STATUSES, TERMINAL_STATUSES
from controller.model.records import JobRecord
from controller.state.ledger import Ledger

log = structlog.get_logger(__name__)

BLOCKED = "BLOCKED"
# An active run AWS did not return on the last read (it lists new jobs late): its last
# status is kept, and it is never shown as finished.
NOT_VISIBLE = "NOT VISIBLE YET"


@dataclass
class JobView:
    record: JobRecord
    status: str  # AWS status, or the ledger state when there is no job yet
    upstream: list[str] = field(default_factory=list)  # job names, in dependsOn order
    blocked_by: list[str] = field(default_factory=list)  # failed upstream jobs (root causes)
    progress: dict[str, int] | None = None  # array parents: size and counts by status
    depth: int = 0  # position in its dependency chain (0: no upstream shown)
    schedule: str | None = None  # the schedule's jobName when this is one tick's run

    @property
    def blocked(self) -> bool:
        return bool(self.blocked_by)

    @property
    def not_visible(self) -> bool:
        return self.record.not_visible and self.status in ACTIVE_STATUSES

    @property
    def display(self) -> str:
        if self.blocked and self.status not in TERMINAL_STATUSES:
            return BLOCKED
        return NOT_VISIBLE if self.not_visible else self.status

    @property
    def settled(self) -> bool:
        """Will not change any more by itself: finished, forgotten, rejected, or blocked."""
        if self.blocked:
            return True
        if self.record.state in ("rejected", "lost"):
            return True
        return self.record.state == "submitted" and self.status not in ACTIVE_STATUSES

    def as_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "queue": r.queue,
            "name": r.name,
            "job_id": r.job_id,
            "state": r.state,
            "status": self.status,
            "display": self.display,
            "not_visible_since": r.missing_since if self.not_visible else None,
            "status_reason": r.status_reason,
            "array": self.progress,
            "depends_on": self.upstream,
            "blocked": self.blocked,
            "blocked_by": self.blocked_by,
            "depth": self.depth,
            "schedule": self.schedule,
            "manifest": r.manifest,
            "revision": r.revision,
            "author": r.author,
            "removed": r.retired,
        }


@dataclass
class Snapshot:
    views: list[JobView]
    # The latest decision of every active schedule: name -> (cron, timezone, last tick run).
    schedules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return all(view.settled for view in self.views)

    @property
    def ok(self) -> bool:
        return all(view.status == "SUCCEEDED" for view in self.views)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for view in self.views:
            counts[view.display] = counts.get(view.display, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs": [view.as_dict() for view in self.views],
            "schedules": self.schedules,
            "counts": self.counts(),
            "done": self.done,
        }


def progress_of(summary: dict[str, int] | None) -> dict[str, int] | None:
    """``statusSummary`` -> ``{"size", "SUCCEEDED", "FAILED", "RUNNING", "PENDING"}``.

    PENDING here is every child not finished and not running (SUBMITTED ... RUNNABLE,
    STARTING counts as RUNNING).
    """
    if not summary:
        return None
    size = sum(int(v) for v in summary.values())
    running = sum(int(summary.get(s, 0)) for s in RUNNING_STATUSES)
    succeeded = int(summary.get("SUCCEEDED", 0))
    failed = int(summary.get("FAILED", 0))
    return {
        "size": size,
        "SUCCEEDED": succeeded,
        "FAILED": failed,
        "RUNNING": running,
        "PENDING": size - succeeded - failed - running,
    }


def select(
    records: Iterable[JobRecord],
    *,
    show_all: bool = False,
    names: tuple[str, ...] = (),
    queues: tuple[str, ...] = (),
    keep: set[tuple[str, str]] | None = None,
) -> list[JobRecord]:
    """Records to show: not removed (unless ``show_all`` or in ``keep``), matching filters."""
    chosen = []
    for record in records:
        if record.retired and not show_all and record.key not in (keep or set()):
            continue
        if names and not any(fnmatch.fnmatchcase(record.name, pattern) for pattern in names):
            continue
        if queues and record.queue not in queues:
            continue
        chosen.append(record)
    return chosen


def build_views(
    records: list[JobRecord],
    *,
    depends_on: dict[str, list[str]],
    summaries: dict[str, dict[str, int]],
    by_id: dict[str, JobRecord],
    tick_of: dict[tuple[str, str], str] | None = None,
) -> list[JobView]:
    """Pure: views in dependency order; ``depends_on`` maps job ID -> upstream job IDs."""
    views: dict[str, JobView] = {}
    order_key = {r.token: (r.queue, r.name) for r in records}
    for record in records:
        summary = summaries.get(record.job_id or "") or record.array_summary
        views[record.token] = JobView(
            record=record,
            status=record.status or record.state,
            progress=progress_of(summary),
            schedule=(tick_of or {}).get(record.key),
        )

    def upstream_records(record: JobRecord) -> list[JobRecord]:
        found = []
        for up_id in depends_on.get(record.job_id or "", []):
            parent = by_id.get(up_id.split(":")[0])  # an array child's parent
            if parent is not None:
                found.append(parent)
        return found

    for view in views.values():
        view.upstream = [up.name for up in upstream_records(view.record)]

    # Blocked: a FAILED job upstream, however far (memoised walk; ids are acyclic in AWS).
    failed_roots: dict[str, list[str]] = {}

    def failures(record: JobRecord, seen: frozenset[str]) -> list[str]:
        if record.token in failed_roots:
            return failed_roots[record.token]
        roots: list[str] = []
        for up in upstream_records(record):
            if up.token in seen:
                continue
            if up.status == "FAILED":
                roots.append(up.name)
            else:
                roots.extend(failures(up, seen | {up.token}))
        failed_roots[record.token] = list(dict.fromkeys(roots))
        return failed_roots[record.token]

    for view in views.values():
        if view.status not in ("SUCCEEDED", *RUNNING_STATUSES):
            view.blocked_by = failures(view.record, frozenset({view.record.token}))

    # Chains top-down: an upstream before its dependents, each chain kept together.
    dependents: dict[str, list[str]] = {token: [] for token in views}
    ups: dict[str, set[str]] = {token: set() for token in views}
    for token, view in views.items():
        for up in upstream_records(view.record):
            if up.token in views:
                ups[token].add(up.token)
                dependents[up.token].append(token)
    ordered: list[str] = []
    placed: set[str] = set()

    def place(token: str, depth: int) -> None:
        if token in placed or not ups[token] <= placed:
            return
        placed.add(token)
        views[token].depth = depth
        ordered.append(token)
        for child in sorted(dependents[token], key=lambda t: order_key[t]):
            place(child, depth + 1)

    for token in sorted(views, key=lambda t: order_key[t]):
        if not ups[token]:
            place(token, 0)
    ordered += [t for t in sorted(views, key=lambda t: order_key[t]) if t not in placed]
    return [views[token] for token in ordered]


class DependencyCache:
    """dependsOn and array summaries from DescribeJobs; dependsOn never changes, so each
    job is described for it once per process (``--watch`` re-reads active ones only)."""

    def __init__(self) -> None:
        self.depends_on: dict[str, list[str]] = {}
        self.summaries: dict[str, dict[str, int]] = {}

    def refresh(self, api: BatchApi, records: list[JobRecord]) -> None:
        wanted = [
            r.job_id
            for r in records
            if r.job_id
            and r.status != "FORGOTTEN"
            and (r.job_id not in self.depends_on or (r.status in ACTIVE_STATUSES))
        ]
        if not wanted:
            return
        try:
            jobs = api.describe_jobs(wanted)
        except BatchError as exc:  # show what the ledger knows; say so in the log
            log.warning("status_describe_failed", jobs=len(wanted), error=str(exc))
            return
        for job in jobs:
            self.depends_on[job["jobId"]] = [
                str(dep.get("jobId")) for dep in job.get("dependsOn") or []
            ]
            summary = (job.get("arrayProperties") or {}).get("statusSummary")
            if summary:
                self.summaries[job["jobId"]] = {k: int(v) for k, v in summary.items()}


def collect(
    ledger: Ledger,
    api: BatchApi | None,
    cache: DependencyCache,
    *,
    show_all: bool = False,
    names: tuple[str, ...] = (),
    queues: tuple[str, ...] = (),
) -> Snapshot:
    """One picture. ``api=None``: offline, the ledger's last known statuses only."""
    if api is not None:
        refresh_statuses(api, ledger)
    current = ledger.current_jobs()
    # Each active schedule's newest run is shown even once finished (finished ticks are
    # retired: they left the desired state, not git).
    schedules = [row for row in ledger.schedules().values() if row.active]
    tick_of: dict[tuple[str, str], str] = {}
    newest: set[tuple[str, str]] = set()
    schedule_info = []
    for row in sorted(schedules, key=lambda r: (r.queue, r.name)):
        runs = [t for t in ledger.ticks(row.queue, row.name) if t.outcome == "run"]
        for tick in runs:
            tick_of[(row.queue, tick.job_name)] = row.name
        if runs:
            newest.add((row.queue, runs[-1].job_name))
        schedule_info.append(
            {
                "queue": row.queue,
                "name": row.name,
                "cron": row.cron,
                "timezone": row.timezone,
                "manifest": row.manifest,
                "last_run": runs[-1].job_name if runs else None,
            }
        )
    records = select(current.values(), show_all=show_all, names=names, queues=queues, keep=newest)
    if api is not None:
        cache.refresh(api, records)
    by_id = {r.job_id: r for r in current.values() if r.job_id}
    for job_id in {up for ups in cache.depends_on.values() for up in ups}:
        parent = job_id.split(":")[0]
        if parent not in by_id:
            record = ledger.job_by_id(parent)  # an earlier (superseded) run of a key
            if record is not None:
                by_id[parent] = record
    views = build_views(
        records,
        depends_on=cache.depends_on,
        summaries=cache.summaries,
        by_id=by_id,
        tick_of=tick_of,
    )
    return Snapshot(views=views, schedules=schedule_info)


def dumps_line(snapshot: Snapshot, at: float) -> str:
    """One JSON line of ``--watch --output json``."""
    return json.dumps({"at": round(at, 3), **snapshot.as_dict()}, separators=(",", ":"))
