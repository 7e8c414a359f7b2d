"""Schedule rules without AWS: validation of options.schedule, tick math, tick names,
and the daemon's cron triggers on a real (paused) APScheduler scheduler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from controller.model import schedule_rules
from controller.model.desired import build_desired
from controller.model.manifests import Manifest, load_files, load_manifest
from controller.model.schedule_rules import ScheduleOptions, decide_tick, newest_tick, tick_name
from controller.service.cron import sync_cron_triggers


def envelope(schedule: object, name: str = "report") -> bytes:
    return json.dumps(
        {
            "apiVersion": "batch-gitops/v1",
            "kind": "Job",
            "spec": {"jobName": name, "jobQueue": "q", "jobDefinition": "d"},
            "options": {"schedule": schedule},
        }
    ).encode()


@pytest.mark.parametrize(
    ("schedule", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "options.schedule.cron", "61"),
        ({"cron": "0 2 * *"}, "options.schedule.cron", "five fields"),
        ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "options.schedule.timezone", "IANA"),
        ({"cron": "0 2 * * *", "catchup": True}, "options.schedule.catchup", "Extra"),
        ({"timezone": "UTC"}, "options.schedule.cron", "required"),
    ],
)
def test_bad_schedule_is_an_error_naming_file_and_field(
    schedule: dict[str, object], field: str, words: str
) -> None:
    """A bad cron, time zone or key is reported as path: options.schedule.<field>: why."""
    loaded = load_manifest("jobs/report.json", envelope(schedule))
    assert isinstance(loaded, list)
    assert [(e.path, e.field) for e in loaded] == [("jobs/report.json", field)]
    assert words.lower() in loaded[0].message.lower()


def test_valid_schedule_is_parsed_with_defaults() -> None:
    """cron only: time zone UTC and catchUp true; catchUp is read from its camelCase key."""
    loaded = load_manifest("j.json", envelope({"cron": "0 2 * * *"}))
    assert isinstance(loaded, Manifest)
    assert loaded.options.schedule == ScheduleOptions(cron="0 2 * * *")
    off = load_manifest("j.json", envelope({"cron": "0 2 * * *", "catchUp": False}))
    assert isinstance(off, Manifest) and off.options.schedule.catch_up is False  # type: ignore[union-attr]


def test_schedule_in_berlin_ticks_at_local_time_and_is_named_in_utc() -> None:
    """02:00 Europe/Berlin is 01:00Z in winter and 00:00Z in summer; names carry UTC."""
    schedule = ScheduleOptions(cron="0 2 * * *", timezone="Europe/Berlin")
    winter, _ = newest_tick(
        schedule.trigger(),
        datetime(2026, 11, 24, 12, tzinfo=UTC),
        datetime(2026, 11, 25, 12, tzinfo=UTC),
    )
    assert winter == datetime(2026, 11, 25, 1, tzinfo=UTC)
    assert tick_name("report", winter) == "report-20261125T0100Z"
    summer, _ = newest_tick(
        schedule.trigger(),
        datetime(2026, 7, 1, 12, tzinfo=UTC),
        datetime(2026, 7, 2, 12, tzinfo=UTC),
    )
    assert summer == datetime(2026, 7, 2, 0, tzinfo=UTC)


def test_long_outage_decides_only_the_newest_tick_quickly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A per-minute cron after 60 days down: one decision (the newest tick), older ones
    passed over; the cron is asked twice per decision (two steps back from now), it does
    not walk the 86,400 ticks of the outage."""
    asked: list[datetime] = []
    newest_at_or_before = schedule_rules.CronSchedule.newest_at_or_before

    def counting(self: Any, moment: datetime) -> datetime | None:
        asked.append(moment)
        return newest_at_or_before(self, moment)

    monkeypatch.setattr(schedule_rules.CronSchedule, "newest_at_or_before", counting)
    after = datetime(2026, 9, 1, tzinfo=UTC)
    now = after + timedelta(days=60, seconds=42)
    on = decide_tick(ScheduleOptions(cron="* * * * *"), after, now, timedelta(seconds=30))
    assert on.tick == now.replace(second=0) and on.outcome == "run" and on.passed_over
    off = decide_tick(
        ScheduleOptions(cron="* * * * *", catch_up=False), after, now, timedelta(seconds=30)
    )
    assert off.tick == on.tick and off.outcome == "skipped" and off.late
    assert len(asked) == 4  # two decisions, two questions each


def test_on_time_tick_runs_and_nothing_is_due_before_the_first_tick() -> None:
    """Within the grace a tick runs even with catchUp false; before a tick, nothing is due."""
    schedule = ScheduleOptions(cron="0 2 * * *", catch_up=False)
    after = datetime(2026, 11, 24, 2, tzinfo=UTC)
    grace = timedelta(minutes=5)
    due = decide_tick(schedule, after, datetime(2026, 11, 25, 2, 3, tzinfo=UTC), grace)
    assert (due.tick, due.outcome, due.late, due.passed_over) == (
        datetime(2026, 11, 25, 2, tzinfo=UTC),
        "run",
        False,
        False,
    )
    early = decide_tick(schedule, after, datetime(2026, 11, 25, 1, 59, tzinfo=UTC), grace)
    assert early.tick is None and early.outcome is None


def test_a_job_may_not_depend_on_a_scheduled_job() -> None:
    """dependsOn a scheduled template is an error on the dependent (one run per tick),
    reported by build_desired, so offline ``validate`` catches it; the schedule stays."""
    dependent = json.dumps(
        {
            "jobName": "after",
            "jobQueue": "q",
            "jobDefinition": "d",
            "dependsOn": [{"jobId": "report"}],
        }
    ).encode()
    desired = build_desired(
        load_files([("a.json", envelope({"cron": "0 2 * * *"}), ""), ("b.json", dependent, "")])
    )
    assert list(desired.jobs) == [("q", "report")]
    assert [(e.path, e.field) for e in desired.errors] == [("b.json", "dependsOn[0].jobId")]
    assert "scheduled job" in desired.errors[0].message


def test_scheduled_job_name_leaves_room_for_the_tick_suffix() -> None:
    """A 114-character template name would make 129-character run names: rejected with
    the file and spec.jobName; 113 characters are fine."""
    loaded = load_manifest("a.json", envelope({"cron": "0 2 * * *"}, "n" * 114))
    assert isinstance(loaded, list)
    assert [(e.path, e.field) for e in loaded] == [("a.json", "spec.jobName")]
    assert "113" in loaded[0].message
    assert isinstance(load_manifest("a.json", envelope({"cron": "0 2 * * *"}, "n" * 113)), Manifest)


def test_daemon_keeps_one_cron_trigger_per_schedule() -> None:
    """sync_cron_triggers adds an APScheduler cron job per schedule (in its time zone),
    keeps it when unchanged, replaces it on a new cron and removes it with the schedule."""
    desired = build_desired(
        load_files([("a.json", envelope({"cron": "0 2 * * *", "timezone": "Europe/Berlin"}), "")])
    )
    template = next(iter(desired.jobs.values()))
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start(paused=True)  # jobs go to the real job store, and never run

    def start_pass() -> None:  # never called: the scheduler is paused
        raise AssertionError("unexpected pass")

    sync_cron_triggers(scheduler, {template.key: template}, start_pass)
    job = scheduler.get_job("schedule:q/report")
    assert job is not None
    assert str(job.trigger) == "cron[0 2 * * *, Europe/Berlin]"
    sync_cron_triggers(scheduler, {template.key: template}, start_pass)
    assert [j.id for j in scheduler.get_jobs()] == ["schedule:q/report"]
    retimed = build_desired(load_files([("a.json", envelope({"cron": "30 3 * * *"}), "")]))
    sync_cron_triggers(scheduler, dict(retimed.jobs), start_pass)
    job = scheduler.get_job("schedule:q/report")
    assert str(job.trigger) == "cron[30 3 * * *, UTC]"
    sync_cron_triggers(scheduler, {}, start_pass)
    assert scheduler.get_jobs() == []
    scheduler.shutdown(wait=False)
