"""The daemon's cron triggers: one APScheduler job per schedule, starting a pass at its tick.

Which tick runs is decided by the pass (:mod:`controller.engine.schedules`, from the
ledger and the clock); these triggers only make it prompt instead of waiting for
the next interval pass. They fire on the ticks of the very
:class:`~controller.model.schedule_rules.CronSchedule` the pass evaluates
(standard crontab(5) semantics through cronsim), never on APScheduler's own cron
reading, whose weekdays count from 0 = Monday.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from controller.model.desired import DesiredJob, JobKey
from controller.model.schedule_rules import CronSchedule, ScheduleOptions

TRIGGER_PREFIX = "schedule:"


class StandardCronTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """An APScheduler 3 trigger that fires on a :class:`CronSchedule`'s ticks."""

    __slots__ = ("cron",)

    def __init__(self, cron: CronSchedule) -> None:
        self.cron = cron

    @classmethod
    def of(cls, schedule: ScheduleOptions) -> StandardCronTrigger:
        return cls(schedule.trigger())

    @property
    def timezone(self) -> ZoneInfo:
        return self.cron.zone

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # APScheduler asks for the first fire time at or after ``now`` (and after
        # the previous one): a tick exactly at ``now`` still fires.
        start = now - timedelta(microseconds=1)
        if previous_fire_time is not None:
            start = max(start, previous_fire_time)
        return self.cron.next_after(start)

    def __str__(self) -> str:
        return f"cron[{self.cron.expression}, {self.cron.zone.key}]"

    def __repr__(self) -> str:
        return f"<StandardCronTrigger {self.cron.expression!r} timezone={self.cron.zone.key!r}>"


def sync_cron_triggers(
    scheduler: Any, schedules: dict[JobKey, DesiredJob], start_pass: Callable[[], None]
) -> None:
    """One APScheduler job per schedule in git; each starts a pass at its tick.

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
        trigger = StandardCronTrigger.of(schedule)
        if existing is not None and str(existing.trigger) == str(trigger):
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
