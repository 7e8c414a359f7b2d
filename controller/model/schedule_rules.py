"""Schedule rules, pure: ``options.schedule`` of a Job envelope and which cron tick is due.

:class:`ScheduleOptions` is the validated option (cron expressions are parsed
by APScheduler's ``CronTrigger.from_crontab``, time zones by ``zoneinfo``);
:func:`tick_name` names a tick's run deterministically; :func:`decide_tick`
says, from the newest tick already handled and ``now``, which tick a pass
handles and whether it runs or is skipped (``catchUp``). No I/O: the manifest
loader and the planner's side use this module; the ledger bookkeeping and the
daemon's cron triggers are in :mod:`controller.engine.schedules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator

TICK_FORMAT = "%Y%m%dT%H%MZ"
# "-" + TICK_FORMAT rendered: what a tick adds to the template's jobName.
TICK_SUFFIX_LENGTH = 15
MAX_JOB_NAME = 128
MAX_TEMPLATE_NAME = MAX_JOB_NAME - TICK_SUFFIX_LENGTH
# Cron resolution is one minute; one second past a tick is strictly after it.
_AFTER = timedelta(seconds=1)
# A backwards search never needs more steps than this (crontab ticks are >= 1 min apart).
_MAX_STEPS = 100_000

TickOutcome = Literal["run", "skipped"]


class ScheduleOptions(BaseModel):
    """``options.schedule`` of a Job envelope."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    cron: str = Field(
        description="Five-field crontab expression (minute hour day month weekday), "
        "e.g. '0 2 * * *'."
    )
    timezone: str = Field("UTC", description="IANA time zone the cron expression is read in.")
    catch_up: bool = Field(
        True,
        alias="catchUp",
        description="true: a tick missed while the controller was down runs once when it is "
        "back (only the newest one); false: it is skipped.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'"
            ) from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a crontab expression ({exc}); "
                "use five fields, e.g. '0 2 * * *' for 02:00 daily"
            ) from None
        return value

    def trigger(self) -> CronTrigger:
        return CronTrigger.from_crontab(self.cron, timezone=self.timezone)


def tick_name(name: str, tick: datetime) -> str:
    """The deterministic jobName of one tick's run: ``nightly-20261125T0100Z``."""
    return f"{name}-{tick.astimezone(UTC).strftime(TICK_FORMAT)}"


def tick_from_suffix(suffix: str) -> float | None:
    """The tick (epoch seconds) a run name's suffix stands for, or None if it is not one."""
    if len(suffix) != TICK_SUFFIX_LENGTH - 1:
        return None
    try:
        return datetime.strptime(suffix, TICK_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class TickDecision:
    """What one pass does for one schedule."""

    # Newest tick in (after, now]: handled by this pass (run or skipped); None: nothing due.
    tick: datetime | None = None
    outcome: TickOutcome | None = None
    # True when older ticks in (after, tick) were passed over (never run, by design).
    passed_over: bool = False
    late: bool = False


def _next_fire(trigger: CronTrigger, at_or_after: datetime) -> datetime | None:
    fire: datetime | None = trigger.get_next_fire_time(None, at_or_after)
    return fire


def newest_tick(
    trigger: CronTrigger, after: datetime, now: datetime
) -> tuple[datetime | None, bool]:
    """The newest fire time in ``(after, now]`` and whether older ones precede it there.

    CronTrigger only looks forward, so search a window before ``now`` that
    doubles until it holds a tick: cost grows with log(outage), not with the
    number of ticks missed (a per-minute cron down for a month stays cheap).
    """
    start = after + _AFTER
    first = _next_fire(trigger, start)
    if first is None or first > now:
        return None, False
    window = timedelta(minutes=1)
    found = first
    while True:
        begin = max(start, now - window)
        candidate = _next_fire(trigger, begin)
        if candidate is not None and candidate <= now:
            found = candidate
            break
        if begin == start:  # unreachable (first <= now), but never loop forever
            break
        window *= 2
    for _ in range(_MAX_STEPS):
        following = _next_fire(trigger, found + _AFTER)
        if following is None or following > now:
            break
        found = following
    return found, found > first


def decide_tick(
    schedule: ScheduleOptions, after: datetime, now: datetime, grace: timedelta
) -> TickDecision:
    """Pure: which tick this pass handles, given the newest tick already handled (``after``)."""
    tick, passed_over = newest_tick(schedule.trigger(), after, now)
    if tick is None:
        return TickDecision()
    late = now - tick > grace
    outcome: TickOutcome = "skipped" if late and not schedule.catch_up else "run"
    return TickDecision(tick=tick, outcome=outcome, passed_over=passed_over, late=late)
