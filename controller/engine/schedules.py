"""Recurring jobs: ``options.schedule`` of a Job envelope, its ticks, and their bookkeeping.

A scheduled manifest is a *template*: it is never submitted itself. Each cron
tick becomes its own desired job, keyed ``(jobQueue, "<jobName>-<YYYYMMDDTHHMMZ>")``
(the tick in UTC), so the pure planner handles ticks like any other job and a
second pass or a restarted controller finds the tick's run in the ledger
instead of submitting it again.

Three layers, so the planner stays pure:

* :mod:`controller.model.schedule_rules` (pure): :class:`ScheduleOptions` and
  :func:`decide_tick`, given the newest tick already handled and ``now``,
  which tick (if any) is due.
* :func:`expand_schedules` (called by ``reconcile`` once per pass) reads and
  records the ledger's schedules and ticks (through the ledger's protocol) and
  turns templates into per-tick desired jobs.
* :func:`controller.service.cron.sync_cron_triggers` (called by the daemon after
  each pass) keeps one APScheduler cron job per schedule that starts a pass at
  the tick, so a tick does not wait for the next interval pass.

Missed ticks: a tick seen more than ``schedule_grace`` seconds late (the
controller was down) is submitted once when ``catchUp`` is true — only the
newest missed tick, never a backlog — and skipped (recorded as ``skipped``)
when it is false.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import structlog

from controller.model.desired import DesiredJob, DesiredState, JobKey
from controller.model.jobstatus import FINISHED_STATUSES
from controller.model.records import ScheduleUpdate, TickRow
from controller.model.schedule_rules import (
    ScheduleOptions,
    TickDecision,
    decide_tick,
    tick_from_suffix,
    tick_name,
)
from controller.state.ledger import Ledger

log = structlog.get_logger(__name__)


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
    rows = ledger.schedules()
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
        ledger.record_schedules(
            [
                _update(key, template, schedule, since, decision, decided_at)
                for key, template, schedule, since, decision in decisions
            ],
            gone,
        )
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

    open_by_key = ledger.open_ticks()
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


def _update(
    key: JobKey,
    template: DesiredJob,
    schedule: ScheduleOptions,
    since: float,
    decision: TickDecision,
    decided_at: float,
) -> ScheduleUpdate:
    """The ledger row of one schedule after this pass, with the tick it decided (if any)."""
    queue, name = key
    tick = None
    if decision.tick is not None and decision.outcome is not None:
        tick = TickRow(
            queue=queue,
            name=name,
            tick=decision.tick.timestamp(),
            job_name=tick_name(name, decision.tick),
            outcome=decision.outcome,
            decided_at=decided_at,
        )
    return ScheduleUpdate(
        queue=queue,
        name=name,
        manifest=template.manifest,
        cron=schedule.cron,
        timezone=schedule.timezone,
        since=since,
        last_tick=decision.tick.timestamp() if decision.tick is not None else None,
        tick=tick,
    )
