"""Standard cron semantics, end to end: a week of weekday schedules runs on exactly the
days crontab(5) means (1 = Monday, 0 and 7 = Sunday), through real passes (git, SQLite,
moto) whose clock is walked through the week, and the daemon's APScheduler triggers
fire on the same ticks."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.model.schedule_rules import MACROS, CronSchedule, ScheduleOptions
from controller.service.cron import StandardCronTrigger
from tests.conftest import Controller, GitRepo

# Sunday 22 November 2026, 00:00 UTC: the week walked is Sunday 22 .. Saturday 28.
WEEK_START = datetime(2026, 11, 22, tzinfo=UTC)
SCHEDULES = {
    "mondays": "0 2 * * 1",
    "weekdays": "0 3 * * 1-5",
    "sunday-seven": "0 4 * * 7",
    "sunday-zero": "0 5 * * 0",
}
# What cron means, as day-of-month in that week (22 = Sunday, 23 = Monday, ...).
EXPECTED_DAYS = {
    "mondays": [23],
    "weekdays": [23, 24, 25, 26, 27],
    "sunday-seven": [22],
    "sunday-zero": [22],
}
DEFINITION = {
    "jobDefinitionName": "reporter",
    "type": "container",
    "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
}


def _scheduled(name: str, cron: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch-gitops/v1",
        "kind": "Job",
        "spec": {"jobName": name, "jobQueue": "test-queue", "jobDefinition": "reporter"},
        "options": {"schedule": {"cron": cron, "catchUp": True}},
    }


def _expected_names() -> set[str]:
    hours = {name: int(cron.split()[1]) for name, cron in SCHEDULES.items()}
    return {
        f"{name}-202611{day:02d}T{hours[name]:02d}00Z"
        for name, days in EXPECTED_DAYS.items()
        for day in days
    }


def test_a_week_of_weekday_schedules_runs_on_the_days_cron_means(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Passes every hour from Sunday 00:00 to Saturday 23:00 submit exactly one run per
    cron tick: `0 2 * * 1` on Monday, `1-5` Monday to Friday, `7` and `0` on Sunday."""
    repo.write("defs/reporter.json", DEFINITION)
    for name, cron in SCHEDULES.items():
        repo.write(f"jobs/{name}.yaml", _scheduled(name, cron))
    repo.commit("weekly schedules")
    first = controller.reconcile(now=WEEK_START)  # the schedules start here
    assert not first.failed, first.as_dict()
    submitted: list[str] = []
    for hour in range(1, 7 * 24):
        result = controller.reconcile(now=WEEK_START + timedelta(hours=hour, seconds=20))
        assert not result.failed, result.as_dict()
        submitted += [
            r.action.name
            for r in result.results
            if r.action.action == "submit" and r.result == "ok"
        ]
    assert Counter(submitted) == Counter(_expected_names())
    summaries = batch.list_jobs(jobQueue="test-queue")["jobSummaryList"]
    assert {s["jobName"] for s in summaries} == _expected_names()


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_daemon_trigger_fires_on_the_same_ticks_as_the_pass(name: str) -> None:
    """The APScheduler trigger built from a schedule fires on exactly the ticks the pass
    decides, walking its own next-fire-time chain through the week."""
    trigger = StandardCronTrigger.of(ScheduleOptions(cron=SCHEDULES[name]))
    fires: list[datetime] = []
    previous: datetime | None = None
    now = WEEK_START
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        if fire >= WEEK_START + timedelta(days=7):
            break
        fires.append(fire)
        previous, now = fire, fire
    hour = int(SCHEDULES[name].split()[1])
    assert fires == [datetime(2026, 11, day, hour, tzinfo=UTC) for day in EXPECTED_DAYS[name]], (
        fires
    )


@pytest.mark.parametrize(
    ("cron", "weekdays"),
    [
        ("0 0 * * MON-FRI", {0, 1, 2, 3, 4}),
        ("0 0 * * mon,wed,fri", {0, 2, 4}),
        ("0 0 * * SUN", {6}),
        ("0 0 * * 5-7", {4, 5, 6}),
        ("0 0 * * */2", {6, 1, 3, 5}),  # 0,2,4,6: Sunday, Tuesday, Thursday, Saturday
        ("@weekly", {6}),
        ("@daily", {0, 1, 2, 3, 4, 5, 6}),
    ],
)
def test_names_ranges_steps_and_nicknames_pick_cron_weekdays(cron: str, weekdays: set[int]) -> None:
    """Weekday names, lists, ranges ending in 7, steps and nicknames select the days cron
    selects (Python's weekday(): 0 = Monday)."""
    schedule = ScheduleOptions(cron=cron).trigger()
    ticks = []
    moment = WEEK_START - timedelta(seconds=1)
    for _ in range(7 * 24 * 60):
        tick = schedule.next_after(moment)
        assert tick is not None
        if tick >= WEEK_START + timedelta(days=7):
            break
        ticks.append(tick)
        moment = tick
    assert {tick.weekday() for tick in ticks} == weekdays


def test_nicknames_expand_to_their_crontab_meaning() -> None:
    """@hourly ticks every hour on the hour, @monthly on the 1st at 00:00, @yearly on 1 January."""
    after = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    assert ScheduleOptions(cron="@hourly").trigger().next_after(after) == after.replace(
        hour=11, minute=0
    )
    assert ScheduleOptions(cron="@monthly").trigger().next_after(after) == datetime(
        2026, 12, 1, tzinfo=UTC
    )
    assert ScheduleOptions(cron="@yearly").trigger().next_after(after) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert set(MACROS) >= {"@daily", "@weekly", "@hourly", "@monthly", "@yearly"}


@pytest.mark.parametrize(
    "cron", ["0 2 * * 8", "@reboot", "@sometimes", "0 0 2 * * *", "0 2 * * FOO", "60 * * * *"]
)
def test_what_crontab_refuses_is_refused(cron: str) -> None:
    """Weekday 8, @reboot (no tick), unknown nicknames, six fields, bad names and minute 60
    are refused with the expression in the message."""
    with pytest.raises(ValueError, match="not a crontab expression"):
        CronSchedule.parse(cron, "UTC")


def test_trigger_in_a_time_zone_fires_at_local_time() -> None:
    """A Europe/Berlin trigger fires at 02:00 Berlin (01:00Z in winter) on Mondays only."""
    trigger = StandardCronTrigger.of(ScheduleOptions(cron="0 2 * * 1", timezone="Europe/Berlin"))
    fire = trigger.get_next_fire_time(None, WEEK_START)
    assert fire == datetime(2026, 11, 23, 1, tzinfo=UTC)
    assert str(trigger) == "cron[0 2 * * 1, Europe/Berlin]"
