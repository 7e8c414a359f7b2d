"""Schedules end to end: real git repository, real SQLite ledger, boto3 over HTTP to moto.

Time is driven through ``run_pass(now=...)`` with a per-minute cron, so several
ticks, restarts between them and a controller that was down for ticks take
milliseconds instead of minutes.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo, WriteCounter, make_controller
from tests.support.aws import job_names, wait_for_status
from tests.support.manifests import definition, envelope, job


@pytest.fixture
def controller(store_controller: Controller) -> Controller:
    """Every schedule test on both ledger stores: a SQLite file and a DynamoDB table."""
    return store_controller


DEFINITION = definition("reporter")
T0 = datetime(2026, 11, 25, 2, 0, 30, tzinfo=UTC)


def scheduled(catch_up: bool = True, cron: str = "* * * * *") -> dict[str, Any]:
    """The report job on a cron schedule (UTC), catching up missed ticks or not."""
    schedule = {"cron": cron, "timezone": "UTC", "catchUp": catch_up}
    return envelope(job("report", definition="reporter"), schedule=schedule)


def at(minutes: int, seconds: int) -> datetime:
    return T0.replace(second=0) + timedelta(minutes=minutes, seconds=seconds)


def aws_job_names(batch: Any) -> Counter[str]:
    """Every job AWS holds in the queue, by name (moto lists all statuses)."""
    return Counter(job_names(batch))


def short(controller: Controller, grace: float = 30.0) -> Controller:
    """The same controller with a 30 s grace, so 'late' is easy to reach."""
    controller.ledger.close()
    return make_controller(controller.settings.model_copy(update={"schedule_grace": grace}))


def setup(repo: GitRepo, catch_up: bool) -> None:
    repo.write("defs/reporter.json", DEFINITION)
    repo.write("jobs/report.yaml", scheduled(catch_up))
    repo.commit("nightly report")


def test_ticks_across_restarts_with_catch_up_run_once_each_and_the_newest_missed_one(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Every tick the controller is up for runs exactly once, whatever the passes and
    restarts; after an outage over three ticks only the newest one runs (catch-up)."""
    setup(repo, catch_up=True)
    ctl = short(controller)
    first = ctl.reconcile(now=T0)
    assert not first.failed, first.as_dict()
    assert not [r for r in first.results if r.action.action == "submit"]  # the template itself
    assert aws_job_names(batch) == Counter()

    ctl.reconcile(now=at(1, 5))  # tick 02:01, on time
    counter = WriteCounter(ctl.api)
    ctl.reconcile(now=at(1, 20))  # second pass in the same minute
    assert counter.writes == []
    ctl = ctl.restart()
    ctl.reconcile(now=at(2, 10))  # tick 02:02 after a restart
    ctl = ctl.restart()
    # Down for 02:03, 02:04 and 02:05; back 50 s after 02:05 (grace 30 s): catch up once.
    result = ctl.reconcile(now=at(5, 50))
    assert [(r.action.name, r.result) for r in result.results if r.action.action == "submit"] == [
        ("report-20261125T0205Z", "ok")
    ]
    ctl = ctl.restart()
    counter = WriteCounter(ctl.api)
    ctl.reconcile(now=at(5, 55))
    assert counter.writes == []

    assert aws_job_names(batch) == Counter(
        {"report-20261125T0201Z": 1, "report-20261125T0202Z": 1, "report-20261125T0205Z": 1}
    )
    ticks = [(t.job_name, t.outcome) for t in ctl.ledger.ticks()]
    assert ticks == [
        ("report-20261125T0201Z", "run"),
        ("report-20261125T0202Z", "run"),
        ("report-20261125T0205Z", "run"),
    ]
    record = ctl.ledger.current_jobs()[("test-queue", "report-20261125T0205Z")]
    assert record.manifest == "jobs/report.yaml" and record.job_id


def test_missed_tick_is_skipped_without_catch_up(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """catchUp: false: a tick seen after the grace is recorded (and logged) as skipped
    and never run; the next on-time tick runs."""
    setup(repo, catch_up=False)
    ctl = short(controller)
    ctl.reconcile(now=T0)
    ctl.reconcile(now=at(1, 5))
    ctl = ctl.restart()
    with structlog.testing.capture_logs() as logs:
        skipped = ctl.reconcile(now=at(3, 45))  # 02:02 and 02:03 missed, 02:03 45 s late
    assert [r for r in skipped.results if r.action.action == "submit"] == []
    [event] = [e for e in logs if e["event"] == "schedule_tick"]
    assert (event["tick"], event["outcome"], event["late"], event["passed_over"]) == (
        "2026-11-25T02:03:00+00:00",
        "skipped",
        True,
        True,
    )
    ctl = ctl.restart()
    ctl.reconcile(now=at(4, 2))
    assert aws_job_names(batch) == Counter({"report-20261125T0201Z": 1, "report-20261125T0204Z": 1})
    assert [(t.job_name, t.outcome) for t in ctl.ledger.ticks()] == [
        ("report-20261125T0201Z", "run"),
        ("report-20261125T0203Z", "skipped"),
        ("report-20261125T0204Z", "run"),
    ]


def test_removing_the_schedule_stops_future_runs_and_leaves_finished_ones(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """After the manifest is removed no tick is submitted any more, and the finished
    runs are neither cancelled nor terminated (no write at all)."""
    setup(repo, catch_up=True)
    controller.reconcile(now=T0)
    controller.reconcile(now=at(1, 5))
    repo.remove("jobs/report.yaml")
    repo.commit("no more reports")
    counter = WriteCounter(controller.api)
    controller.reconcile(now=at(2, 5))
    controller.reconcile(now=at(3, 5))
    assert counter.writes == []
    assert aws_job_names(batch) == Counter({"report-20261125T0201Z": 1})
    record = controller.ledger.current_jobs()[("test-queue", "report-20261125T0201Z")]
    assert record.status == "SUCCEEDED" and record.retired


def test_editing_the_template_applies_from_the_next_tick(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """A changed spec never re-runs or stops a past tick; the next tick runs the new spec."""
    setup(repo, catch_up=True)
    controller.reconcile(now=T0)
    controller.reconcile(now=at(1, 5))
    changed = scheduled()
    changed["spec"]["parameters"] = {"day": "yesterday"}
    repo.write("jobs/report.yaml", changed)
    repo.commit("report yesterday")
    counter = WriteCounter(controller.api)
    controller.reconcile(now=at(1, 40))
    assert counter.writes == []
    controller.reconcile(now=at(2, 5))
    assert counter.writes == ["SubmitJob"]
    new = controller.ledger.current_jobs()[("test-queue", "report-20261125T0202Z")]
    job = batch.describe_jobs(jobs=[new.job_id])["jobs"][0]
    assert job["parameters"] == {"day": "yesterday"}


def test_dry_run_shows_the_due_tick_without_recording_it(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """plan (dry run) lists the tick it would submit; it records nothing, so the real
    pass afterwards still submits it."""
    setup(repo, catch_up=True)
    controller.reconcile(now=T0)
    planned = controller.reconcile(now=at(1, 5), dry_run=True)
    assert planned.plan is not None
    assert [a.name for a in planned.plan.actions if a.action == "submit"] == [
        "report-20261125T0201Z"
    ]
    assert controller.ledger.ticks() == []
    controller.reconcile(now=at(1, 6))
    assert aws_job_names(batch) == Counter({"report-20261125T0201Z": 1})


def test_a_running_tick_is_left_running_by_the_next_tick_and_stopped_on_removal(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Runs overlap: the next tick submits a new job and leaves the running one alone;
    removing the manifest then stops the active runs like any removed job."""
    demo_backend.set_mode("hold", step=0.05)
    setup(repo, catch_up=True)
    controller.reconcile(now=T0)
    controller.reconcile(now=at(1, 5))
    first = controller.ledger.current_jobs()[("test-queue", "report-20261125T0201Z")].job_id
    assert first
    wait_for_status(first, "RUNNING")
    counter = WriteCounter(controller.api)
    controller.reconcile(now=at(2, 5))
    assert counter.writes == ["SubmitJob"]
    assert demo_backend.job_status(first) == "RUNNING"
    repo.remove("jobs/report.yaml")
    repo.commit("no more reports")
    result = controller.reconcile(now=at(2, 30))
    stopped = sorted((r.action.name, r.result) for r in result.results if r.action.is_prune)
    assert [name for name, _ in stopped] == ["report-20261125T0201Z", "report-20261125T0202Z"]
    assert batch.describe_jobs(jobs=[first])["jobs"][0]["status"] == "FAILED"


def test_daemon_pass_registers_a_cron_trigger_per_schedule(
    controller: Controller, repo: GitRepo
) -> None:
    """After a daemon pass, its APScheduler holds a cron job for the schedule in git
    (in the schedule's time zone); after the manifest is removed, it is gone."""
    from controller.service.daemon import Daemon

    setup(repo, catch_up=True)
    daemon = Daemon(controller.settings, controller.api, controller.ledger)
    daemon.scheduler.start(paused=True)  # a real job store; nothing runs
    try:
        assert daemon.run_once().result == "ok"
        job = daemon.scheduler.get_job("schedule:test-queue/report")
        assert job is not None and str(job.trigger) == "cron[* * * * *, UTC]"
        repo.remove("jobs/report.yaml")
        repo.commit("no more reports")
        daemon.run_once()
        assert daemon.scheduler.get_job("schedule:test-queue/report") is None
    finally:
        daemon.scheduler.shutdown(wait=False)


def test_a_rebuilt_ledger_neither_stops_nor_repeats_a_running_tick(
    controller: Controller, repo: GitRepo, batch: Any, tmp_path: Any
) -> None:
    """The ledger is lost while tick 02:01 runs and is rebuilt from AWS tags (no tick
    tables): the next pass writes nothing — the run is neither stopped nor submitted
    again — and the schedule resumes with tick 02:02."""
    from controller.state.rebuild import rebuild
    from controller.state.sqlite import SqliteLedger

    demo_backend.set_mode("hold", step=0.05)
    setup(repo, catch_up=True)
    controller.reconcile(now=T0)
    controller.reconcile(now=at(1, 5))
    running = controller.ledger.current_jobs()[("test-queue", "report-20261125T0201Z")].job_id
    assert running
    wait_for_status(running, "RUNNING")
    controller.ledger.close()

    state = tmp_path / "rebuilt.sqlite"
    fresh = SqliteLedger(state)
    rebuild(controller.api, fresh, ["test-queue"], controller.settings.controller_id)
    fresh.close()
    ctl = make_controller(controller.settings.model_copy(update={"state": state}))
    counter = WriteCounter(ctl.api)
    after = ctl.reconcile(now=at(1, 40))
    assert counter.writes == [] and not after.failed, after.as_dict()
    assert demo_backend.job_status(running) == "RUNNING"
    ctl.reconcile(now=at(2, 5))
    assert counter.writes == ["SubmitJob"]
    assert aws_job_names(batch) == Counter({"report-20261125T0201Z": 1, "report-20261125T0202Z": 1})
