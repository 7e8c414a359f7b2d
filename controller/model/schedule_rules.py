"""Schedule rules, pure: ``options.schedule`` of a Job envelope and which cron tick is due.

:class:`ScheduleOptions` is the validated option. Cron expressions mean what
crontab(5) says (0 and 7 are Sunday, ``MON-FRI``, ``JAN``, ranges, steps, the
``@daily`` family): :class:`CronSchedule` evaluates them with cronsim, which
follows Debian's (Vixie) cron, including its day-of-month/day-of-week "or" rule
and its DST handling. The daemon's APScheduler triggers
(:mod:`controller.service.cron`) wrap the same :class:`CronSchedule`, so a
trigger fires on exactly the ticks a pass decides. Time zones come from ``zoneinfo``;
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

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller.model.constraints import any_case_pattern

TICK_FORMAT = "%Y%m%dT%H%MZ"
# "-" + TICK_FORMAT rendered: what a tick adds to the template's jobName.
TICK_SUFFIX_LENGTH = 15
MAX_JOB_NAME = 128
MAX_TEMPLATE_NAME = MAX_JOB_NAME - TICK_SUFFIX_LENGTH
# Cron resolution is one minute; one second past a tick is strictly after it.
_AFTER = timedelta(seconds=1)
# crontab(5)'s nicknames (Debian cron, cronie). @reboot has no tick, so it is not one.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# What JSON Schema can say about a cron expression (the editor schema): a nickname or
# five fields. Field values (minute 61, weekday 8) are checked by cronsim at run time.
CRON_SHAPE = r"^\s*(" + any_case_pattern(list(MACROS)) + r"|\S+(\s+\S+){4})\s*$"

TickOutcome = Literal["run", "skipped"]


class ScheduleOptions(BaseModel):
    """``options.schedule`` of a Job envelope."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    cron: str = Field(
        description="crontab(5) expression: five fields (minute hour day-of-month month "
        "day-of-week; 0 and 7 are Sunday; names such as MON-FRI and JAN; ranges, lists, steps) "
        "or @yearly, @monthly, @weekly, @daily, @hourly. E.g. '0 2 * * 1-5': 02:00 Monday to "
        "Friday.",
        json_schema_extra={"pattern": CRON_SHAPE},
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
        CronSchedule.parse(value, "UTC")
        return value

    def trigger(self) -> CronSchedule:
        return CronSchedule.parse(self.cron, self.timezone)


@dataclass(frozen=True)
class CronSchedule:
    """One cron expression read in one time zone; ticks are aware datetimes."""

    expression: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, value: str, timezone: str) -> CronSchedule:
        """Raises ValueError with a one-line reason for anything crontab(5) refuses."""
        text = value.strip()
        expression = MACROS.get(text.lower(), text)
        fields = expression.split()
        if text.startswith("@") and text.lower() not in MACROS:
            reason = f"unknown nickname; use one of {', '.join(MACROS)}"
        elif len(fields) != 5:
            reason = f"{len(fields)} fields"
        else:
            try:
                CronSim(expression, datetime(2000, 1, 1))
            except (CronSimError, ValueError, IndexError) as exc:
                reason = str(exc) or type(exc).__name__
            else:
                return cls(expression=" ".join(fields), zone=ZoneInfo(timezone))
        raise ValueError(
            f"{value!r} is not a crontab expression ({reason}); use five fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 2 * * 1-5' for 02:00 "
            "Monday to Friday, or @daily"
        )

    def next_after(self, moment: datetime) -> datetime | None:
        """The first tick strictly after ``moment``."""
        local = moment.astimezone(self.zone).replace(microsecond=0)
        try:
            return next(iter(CronSim(self.expression, local)))
        except StopIteration:  # nothing in cronsim's 50-year horizon (e.g. 30 Feb)
            return None

    def newest_at_or_before(self, moment: datetime) -> datetime | None:
        """The newest tick at or before ``moment``."""
        # cronsim's reverse iteration starts strictly before its start: start a second on.
        local = (moment.astimezone(self.zone) + _AFTER).replace(microsecond=0)
        try:
            return next(iter(CronSim(self.expression, local, reverse=True)))
        except StopIteration:
            return None


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


def newest_tick(cron: CronSchedule, after: datetime, now: datetime) -> tuple[datetime | None, bool]:
    """The newest tick in ``(after, now]`` and whether older ones precede it there.

    Two steps backwards from ``now`` answer both, however long the controller
    was down (a per-minute cron down for a month stays cheap).
    """
    newest = cron.newest_at_or_before(now)
    if newest is None or newest <= after:
        return None, False
    before = cron.newest_at_or_before(newest - _AFTER)
    return newest, before is not None and before > after


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
