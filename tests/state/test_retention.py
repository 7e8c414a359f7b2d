"""Ledger retention against a ledger filled by real passes (real git, moto over HTTP,
SQLite): old history goes, nothing that would make the controller act again does."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from click.testing import CliRunner

from controller.cli.main import main
from controller.demo import backend as demo_backend
from controller.state.retention import DAY, LAST_PRUNE_META, prune_if_due, prune_ledger
from tests.conftest import Controller, GitRepo, WriteCounter
from tests.support.manifests import definition, envelope
from tests.support.manifests import job as make_job


@pytest.fixture
def controller(store_controller: Controller) -> Controller:
    """Every retention test on both ledger stores: a SQLite file and a DynamoDB table."""
    return store_controller


DEFINITION = definition("worker")
T0 = datetime(2026, 11, 25, 2, 0, 30, tzinfo=UTC)
# "Now" for pruning: 100 days on, so with 90 days' retention everything written so far is old.
LATER = time.time() + 100 * DAY


job = partial(make_job, definition="worker")


def at(minutes: int, seconds: int) -> datetime:
    return T0.replace(second=0) + timedelta(minutes=minutes, seconds=seconds)


def fill(controller: Controller, repo: GitRepo) -> None:
    """keep (unchanged), change (re-run with a new spec), gone (removed), a schedule with
    two finished ticks, and wait (still queued in AWS)."""
    repo.write("defs/worker.json", DEFINITION)
    for name in ("keep", "change", "gone"):
        repo.write(f"jobs/{name}.json", job(name))
    repo.write("jobs/tick.json", envelope(job("tick"), schedule={"cron": "* * * * *"}))
    repo.commit("jobs")
    controller.reconcile(now=T0)
    repo.write("jobs/change.json", job("change", parameters={"v": "2"}))
    repo.remove("jobs/gone.json")
    repo.commit("change and remove")
    controller.reconcile(now=at(1, 5))  # also tick 02:01
    controller.reconcile(now=at(2, 5))  # tick 02:02
    demo_backend.set_mode("queued")
    repo.write("jobs/wait.json", job("wait"))
    repo.commit("wait")
    controller.reconcile(now=at(2, 20))
    controller.reconcile(now=at(2, 30))  # statuses read back: finished runs are FINISHED
    assert all(not p.failed for p in controller.passes), [p.as_dict() for p in controller.passes]


def ledger_rows(controller: Controller) -> list[tuple[str, str, bool, bool]]:
    return sorted(
        (r.name, r.status or r.state, r.is_current, r.retired) for r in controller.ledger.jobs()
    )


def test_prune_keeps_what_the_planner_needs_and_causes_no_resubmit(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Superseded, removed and finished-tick runs, their ticks, actions and passes go;
    the current runs of jobs in git, the active job and the schedule's position stay.
    The next passes write nothing to AWS but the next tick's SubmitJob."""
    fill(controller, repo)
    before = ledger_rows(controller)
    preview = prune_ledger(controller.ledger, older_than=90 * DAY, now=LATER, dry_run=True)
    assert ledger_rows(controller) == before  # a dry run deletes nothing
    result = prune_ledger(controller.ledger, older_than=90 * DAY, now=LATER)
    assert (result.jobs, result.ticks) == (preview.jobs, preview.ticks) == (4, 2)
    assert result.actions > 0 and result.passes > 0

    assert ledger_rows(controller) == [
        ("change", "SUCCEEDED", True, False),
        ("keep", "SUCCEEDED", True, False),
        ("wait", "SUBMITTED", True, False),
    ]
    assert controller.ledger.ticks() == []
    [schedule] = controller.ledger.schedules().values()
    assert schedule.last_tick == at(2, 0).timestamp()

    counter = WriteCounter(controller.api)
    again = controller.reconcile(now=at(2, 40))
    assert counter.writes == [] and not again.failed
    controller.reconcile(now=at(3, 5))
    assert counter.writes == ["SubmitJob"]  # tick 02:03 only; 02:01 and 02:02 never again
    assert ("test-queue", "tick-20261125T0203Z") in controller.ledger.current_jobs()


def test_nothing_is_pruned_inside_the_retention_window(
    controller: Controller, repo: GitRepo
) -> None:
    """With 90 days' retention and records minutes old, prune deletes nothing."""
    fill(controller, repo)
    before = ledger_rows(controller)
    result = prune_ledger(controller.ledger, older_than=90 * DAY)
    assert (result.jobs, result.ticks, result.actions, result.passes) == (0, 0, 0, 0)
    assert ledger_rows(controller) == before


def test_daemon_prunes_with_the_setting_at_most_hourly(
    controller: Controller, repo: GitRepo
) -> None:
    """ledger_retention_days=0 never prunes; set, it prunes once and records when, and a
    second call within the hour does nothing."""
    fill(controller, repo)
    before = ledger_rows(controller)
    prune_if_due(controller.ledger, 0, now=LATER)
    assert ledger_rows(controller) == before
    prune_if_due(controller.ledger, 90, now=LATER)
    assert len(ledger_rows(controller)) == 3
    assert controller.ledger.get_meta(LAST_PRUNE_META) == str(LATER)
    repo.write("jobs/keep.json", job("keep", parameters={"v": "3"}))
    repo.commit("keep v3")
    controller.reconcile(now=at(2, 40))
    controller.reconcile(now=at(2, 45))
    prune_if_due(controller.ledger, 90, now=LATER + 600)
    assert len(ledger_rows(controller)) == 4  # the superseded keep run stays until next hour


def test_ledger_prune_command(controller: Controller, repo: GitRepo) -> None:
    """``ledger prune --older-than 90d --output json`` reports counts; a bad age, or one
    under AWS's own week, is a usage error naming --older-than."""
    fill(controller, repo)
    runner = CliRunner()
    state = str(controller.settings.state)
    ok = runner.invoke(
        main, ["ledger", "prune", "--older-than", "90d", "--state", state, "-o", "json"]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["jobs"] == 0  # logs go to stderr
    bad = runner.invoke(main, ["ledger", "prune", "--older-than", "soon", "--state", state])
    assert bad.exit_code == 2 and "--older-than" in bad.output
    young = runner.invoke(main, ["ledger", "prune", "--older-than", "36h", "--state", state])
    assert young.exit_code == 2 and "at least 7 days" in young.output
