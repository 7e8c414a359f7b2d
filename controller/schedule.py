"""Recurring jobs: ``options.schedule`` of a Job envelope, its ticks, and their bookkeeping.

A scheduled manifest is a *template*: it is never submitted itself. Each cron
tick becomes its own desired job, keyed ``(jobQueue, "<jobName>-<YYYYMMDDTHHMMZ>")``
(the tick in UTC), so the pure planner handles ticks like any other job and a
second pass or a restarted controller finds the tick's run in the ledger
instead of submitting it again.

Three layers, so the planner stays pure:

* :mod:`controller.schedule_rules` (pure): :class:`ScheduleOptions` and
  :func:`decide_tick`, given the newest tick already handled and ``now``,
  which tick (if any) is due.
* :func:`expand_schedules` (called by ``reconcile`` once per pass) reads and
  writes the two ledger tables this module owns (``schedules``,
  ``schedule_ticks``) and turns templates into per-tick desired jobs.
* :func:`sync_cron_triggers` (called by the daemon after each pass) keeps one
  APScheduler cron job per schedule that starts a pass at the tick, so a tick
  does not wait for the next interval pass.

Missed ticks: a tick seen more than ``schedule_grace`` seconds late (the
controller was down) is submitted once when ``catchUp`` is true — only the
newest missed tick, never a backlog — and skipped (recorded as ``skipped``)
when it is false.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from controller.desired import DesiredJob, DesiredState, JobKey
from controller.jobstatus import TERMINAL_STATUSES
from controller.ledger import Ledger
from controller.plan import FORGOTTEN
from controller.schedule_rules import (
    ScheduleOptions,
    TickDecision,
    decide_tick,
    tick_from_suffix,
    tick_name,
)

log = structlog.get_logger(__name__)

TRIGGER_PREFIX = "schedule:"
# A run that can never change again (FORGOTTEN: AWS forgot it).
FINISHED_STATUSES = (*TERMINAL_STATUSES, FORGOTTEN)


# --- ledger bookkeeping ---------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    since REAL NOT NULL,            -- first seen (as now written): no earlier tick ever runs
    last_tick REAL,                 -- newest tick handled (run or skipped)
    active INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (queue, name)
);
CREATE TABLE IF NOT EXISTS schedule_ticks (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,             -- the template's jobName
    tick REAL NOT NULL,             -- UTC epoch seconds
    job_name TEXT NOT NULL,
    outcome TEXT NOT NULL,          -- run | skipped
    decided_at REAL NOT NULL,
    PRIMARY KEY (queue, name, tick)
);
CREATE INDEX IF NOT EXISTS schedule_ticks_job ON schedule_ticks (queue, job_name);
"""


@dataclass(frozen=True)
class ScheduleRow:
    queue: str
    name: str
    manifest: str
    cron: str
    timezone: str
    since: float
    last_tick: float | None
    active: bool


@dataclass(frozen=True)
class TickRow:
    queue: str
    name: str
    tick: float
    job_name: str
    outcome: str
    decided_at: float


def ensure_tables(ledger: Ledger) -> None:
    with ledger.lock:
        ledger.db.executescript(SCHEMA)


def schedule_rows(ledger: Ledger) -> dict[tuple[str, str], ScheduleRow]:
    ensure_tables(ledger)
    with ledger.lock:
        rows = ledger.db.execute("SELECT * FROM schedules").fetchall()
    return {
        (r["queue"], r["name"]): ScheduleRow(**{**dict(r), "active": bool(r["active"])})
        for r in rows
    }


def tick_rows(ledger: Ledger, queue: str | None = None, name: str | None = None) -> list[TickRow]:
    ensure_tables(ledger)
    query = "SELECT * FROM schedule_ticks"
    params: tuple[str, ...] = ()
    if queue is not None and name is not None:
        query, params = query + " WHERE queue=? AND name=?", (queue, name)
    with ledger.lock:
        rows = ledger.db.execute(query + " ORDER BY tick", params).fetchall()
    return [TickRow(**dict(r)) for r in rows]


def open_ticks(ledger: Ledger) -> dict[tuple[str, str], list[float]]:
    """Run ticks whose run is not over (no record yet, intent, active, rejected), by schedule.

    Finished runs drop out of the desired state: the planner only retires them
    (bookkeeping), so they can never be re-run or stopped, and the desired state
    stays as small as the number of runs in flight.
    """
    ensure_tables(ledger)
    marks = ",".join("?" * len(FINISHED_STATUSES))
    with ledger.lock:
        rows = ledger.db.execute(
            "SELECT t.queue, t.name, t.tick FROM schedule_ticks t LEFT JOIN jobs j "
            "ON j.queue=t.queue AND j.name=t.job_name AND j.is_current=1 "
            "WHERE t.outcome='run' AND (j.token IS NULL OR "
            f"NOT (j.state='submitted' AND j.status IN ({marks}))) ORDER BY t.tick",
            FINISHED_STATUSES,
        ).fetchall()
    found: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        found.setdefault((row["queue"], row["name"]), []).append(float(row["tick"]))
    return found


def _record(
    db: sqlite3.Connection,
    key: JobKey,
    template: DesiredJob,
    schedule: ScheduleOptions,
    since: float,
    decision: TickDecision,
    decided_at: float,
) -> None:
    queue, name = key
    last_tick = decision.tick.timestamp() if decision.tick is not None else None
    db.execute(
        "INSERT INTO schedules(queue, name, manifest, cron, timezone, since, last_tick, active) "
        "VALUES(?,?,?,?,?,?,?,1) ON CONFLICT(queue, name) DO UPDATE SET "
        "manifest=excluded.manifest, cron=excluded.cron, timezone=excluded.timezone, "
        "since=excluded.since, last_tick=COALESCE(excluded.last_tick, schedules.last_tick), "
        "active=1",
        (queue, name, template.manifest, schedule.cron, schedule.timezone, since, last_tick),
    )
    if decision.tick is not None and decision.outcome is not None:
        db.execute(
            "INSERT OR IGNORE INTO schedule_ticks(queue, name, tick, job_name, outcome, "
            "decided_at) VALUES(?,?,?,?,?,?)",
            (
                queue,
                name,
                decision.tick.timestamp(),
                tick_name(name, decision.tick),
                decision.outcome,
                decided_at,
            ),
        )


def expand_schedules(
    desired: DesiredState,
    ledger: Ledger,
    *,
    now: datetime,
    grace: timedelta,
    record: bool = True,
) -> DesiredState:
    """Replace scheduled templates by one desired job per tick that was decided to run.

    Writes the tick decisions to the ledger first (``record``; a dry run only
    computes), so the decision survives a crash before SubmitJob: the tick
    stays desired and is submitted by the next pass, never decided twice.
    Every earlier tick whose run is not over stays desired with the spec hash
    it was submitted with, so an edit to the template applies from the next
    tick on and never re-runs or stops past ticks; finished ones are retired.
    Removing the schedule or the manifest makes its ticks undesired: finished
    runs are left alone, active ones are stopped like any removed job (unless ``prune: false``).
    Name length and ``dependsOn`` a schedule are checked earlier (manifests,
    desired), so the offline ``validate`` reports them too.
    """
    templates = {key: job for key, job in desired.jobs.items() if job.options.schedule}
    rows = schedule_rows(ledger)
    if not templates and not any(row.active for row in rows.values()):
        return desired
    jobs = {key: job for key, job in desired.jobs.items() if key not in templates}
    schedules: dict[JobKey, DesiredJob] = {}

    current = ledger.current_jobs()
    decided_at = now.timestamp()
    decisions: list[tuple[JobKey, DesiredJob, ScheduleOptions, float, TickDecision]] = []
    for key, template in sorted(templates.items()):
        schedule = template.options.schedule
        assert schedule is not None
        schedules[key] = template
        row = rows.get(key)
        if (
            row is None
            or not row.active
            or (row.cron, row.timezone)
            != (
                schedule.cron,
                schedule.timezone,
            )
        ):
            # A new, re-added or re-timed schedule starts now: its past ticks never run.
            since, after_ts = now.timestamp(), now.timestamp()
        else:
            since = row.since
            after_ts = row.last_tick if row.last_tick is not None else row.since
        decision = decide_tick(schedule, datetime.fromtimestamp(after_ts, UTC), now, grace)
        decisions.append((key, template, schedule, since, decision))

    gone = [
        key
        for key, row in rows.items()
        if row.active and key not in templates and row.manifest not in desired.invalid_paths
    ]
    if record:
        with ledger.transaction() as db:  # one transaction per pass, however many schedules
            for key, template, schedule, since, decision in decisions:
                _record(db, key, template, schedule, since, decision, decided_at)
            db.executemany("UPDATE schedules SET active=0 WHERE queue=? AND name=?", gone)
        for key, _, _, _, decision in decisions:
            if decision.tick is not None:
                log.info(
                    "schedule_tick",
                    queue=key[0],
                    schedule=key[1],
                    tick=decision.tick.astimezone(UTC).isoformat(),
                    outcome=decision.outcome,
                    late=decision.late,
                    passed_over=decision.passed_over,
                )
        for key in gone:
            log.info("schedule_removed", queue=key[0], schedule=key[1])

    open_by_key = open_ticks(ledger)
    # Runs the ledger knows without their tick row (a ledger rebuilt from AWS tags, a new
    # leader's ledger): still desired while active, or they would be pruned as removed.
    for (queue, job_name), run in current.items():
        if run.state == "submitted" and run.status in FINISHED_STATUSES:
            continue
        base, _, suffix = job_name.rpartition("-")
        tick = tick_from_suffix(suffix)
        if tick is not None and (queue, base) in templates:
            open_by_key.setdefault((queue, base), []).append(tick)
    for key, template, _, _, decision in decisions:
        ticks = list(open_by_key.get(key, []))
        if not record and decision.tick is not None and decision.outcome == "run":
            ticks.append(decision.tick.timestamp())  # a dry run shows the tick it would run
        for tick in sorted(set(ticks)):
            name = tick_name(key[1], datetime.fromtimestamp(tick, UTC))
            tick_key = (key[0], name)
            recorded = current.get(tick_key)
            jobs[tick_key] = dataclasses.replace(
                template,
                key=tick_key,
                request={**template.request, "jobName": name},
                spec_hash=recorded.spec_hash if recorded is not None else template.spec_hash,
            )

    return dataclasses.replace(desired, jobs=jobs, schedules=schedules)


# --- daemon: a cron trigger per schedule ---------------------------------------------------


def sync_cron_triggers(
    scheduler: Any, schedules: dict[JobKey, DesiredJob], start_pass: Callable[[], None]
) -> None:
    """One APScheduler cron job per schedule in git; each starts a pass at its tick.

    The pass decides what is due (ledger + clock), so a trigger that fires
    twice, or not at all, never changes which runs are submitted: it only makes
    them prompt. Jobs of removed schedules are removed.
    """
    wanted: dict[str, ScheduleOptions] = {}
    for (queue, name), template in schedules.items():
        if template.options.schedule is not None:
            wanted[f"{TRIGGER_PREFIX}{queue}/{name}"] = template.options.schedule
    for job in scheduler.get_jobs():
        if job.id.startswith(TRIGGER_PREFIX) and job.id not in wanted:
            scheduler.remove_job(job.id)
    for job_id, schedule in wanted.items():
        existing = scheduler.get_job(job_id)
        trigger = schedule.trigger()
        same = existing is not None and (str(existing.trigger), str(existing.trigger.timezone))
        if same == (str(trigger), str(trigger.timezone)):
            continue  # unchanged: keep its next fire time
        scheduler.add_job(
            start_pass,
            trigger,
            id=job_id,
            name=job_id,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )
