"""The daemon's cron triggers: one APScheduler job per schedule, starting a pass at its tick.

Which tick runs is decided by the pass (:mod:`controller.engine.schedules`, from the
ledger and the clock); these triggers only make it prompt instead of waiting for
the next interval pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.model.desired import DesiredJob, JobKey
from controller.model.schedule_rules import ScheduleOptions

TRIGGER_PREFIX = "schedule:"


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
