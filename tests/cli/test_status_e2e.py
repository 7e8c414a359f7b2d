"""``batch-gitops status`` as users run it (separate processes) against moto over HTTP,
with jobs held by controller.demo.backend so arrays are partly done and upstream
jobs fail while their dependents wait."""

from __future__ import annotations

import json
import time
from functools import partial

import pytest

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo
from tests.support.aws import wait_for_status
from tests.support.cli import run_cli, start_cli
from tests.support.manifests import definition, envelope
from tests.support.manifests import job as make_job

DEFINITION = definition("worker")
job = partial(make_job, definition="worker")


@pytest.fixture
def env(controller: Controller, cli_env: dict[str, str]) -> dict[str, str]:
    """The CLI's environment: the same moto endpoint and ledger file as ``controller``."""
    assert cli_env["BATCH_GITOPS_STATE"] == str(controller.settings.state)
    return {**cli_env, "COLUMNS": "200"}


cli = run_cli


def job_id(controller: Controller, name: str) -> str:
    found = controller.ledger.current_jobs()[("test-queue", name)].job_id
    assert found
    return found


def test_array_progress_in_status_json(
    controller: Controller, repo: GitRepo, env: dict[str, str]
) -> None:
    """A 4-child array with one child succeeded and one failed shows exactly those
    counts (and 2 pending) in ``status --output json``; the parent is still active."""
    demo_backend.set_mode("hold", step=0.05)
    repo.write("defs/worker.json", DEFINITION)
    repo.write("jobs/sweep.json", job("sweep", arrayProperties={"size": 4}))
    repo.commit("sweep")
    assert not controller.reconcile().failed
    parent = job_id(controller, "sweep")
    demo_backend.finish_job(f"{parent}:0", success=True)
    demo_backend.finish_job(f"{parent}:1", success=False)

    shown = cli("status", "--output", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    [sweep] = json.loads(shown.stdout)["jobs"]
    assert sweep["name"] == "sweep" and sweep["job_id"] == parent
    assert sweep["array"] == {"size": 4, "SUCCEEDED": 1, "FAILED": 1, "RUNNING": 0, "PENDING": 2}
    assert sweep["status"] not in ("SUCCEEDED", "FAILED")
    text = cli("status", env=env)
    assert "1/4 ok, 1 failed, 2 pending" in text.stdout, text.stdout


def test_dependency_chain_in_order_and_blocked_after_a_failure(
    controller: Controller, repo: GitRepo, env: dict[str, str]
) -> None:
    """prepare -> train -> report is listed upstream first with depths 0/1/2; after
    prepare FAILS, train and report are BLOCKED by it; an unrelated job is not."""
    demo_backend.set_mode("queued")
    repo.write("defs/worker.json", DEFINITION)
    repo.write("jobs/report.json", job("report", after="train"))
    repo.write("jobs/train.json", job("train", after="prepare"))
    repo.write("jobs/prepare.json", job("prepare"))
    repo.write("jobs/audit.json", job("audit"))
    repo.commit("pipeline")
    assert not controller.reconcile().failed
    demo_backend.finish_job(job_id(controller, "prepare"), success=False)

    body = json.loads(cli("status", "--output", "json", env=env).stdout)
    rows = [
        (j["name"], j["depth"], j["depends_on"], j["display"], j["blocked_by"])
        for j in body["jobs"]
    ]
    assert rows == [
        ("audit", 0, [], "SUBMITTED", []),
        ("prepare", 0, [], "FAILED", []),
        ("train", 1, ["prepare"], "BLOCKED", ["prepare"]),
        ("report", 2, ["train"], "BLOCKED", ["prepare"]),
    ]
    assert body["counts"] == {"SUBMITTED": 1, "FAILED": 1, "BLOCKED": 2}
    text = cli("status", env=env).stdout
    assert "BLOCKED (upstream prepare failed)" in text


def test_watch_json_lines_until_the_job_ends(
    controller: Controller, repo: GitRepo, env: dict[str, str]
) -> None:
    """``status --watch --output json`` prints a JSON line while the job runs, keeps
    watching, and exits 0 with a final done line once the job SUCCEEDED."""
    demo_backend.set_mode("hold", step=0.05)
    repo.write("defs/worker.json", DEFINITION)
    repo.write("jobs/train.json", job("train"))
    repo.commit("train")
    controller.reconcile()
    train = job_id(controller, "train")
    wait_for_status(train, "RUNNING")
    watcher = start_cli(
        "status", "--watch", "--output", "json", "--interval", "0.2s", "--timeout", "30s", env=env
    )
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())
        assert first["done"] is False and first["jobs"][0]["status"] == "RUNNING"
        demo_backend.finish_job(train, success=True)
        rest, errors = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, errors
    last = json.loads(rest.strip().splitlines()[-1])
    assert last["done"] is True and last["jobs"][0]["status"] == "SUCCEEDED"


def test_watch_gives_up_at_the_timeout_and_fails_on_a_failed_job(
    controller: Controller, repo: GitRepo, env: dict[str, str]
) -> None:
    """A job that stays RUNNING makes ``--watch --timeout 1s`` exit 124 after about a
    second; once it FAILED, ``--watch`` (live table) ends at once with exit 1."""
    demo_backend.set_mode("hold", step=0.05)
    repo.write("defs/worker.json", DEFINITION)
    repo.write("jobs/train.json", job("train"))
    repo.commit("train")
    controller.reconcile()
    train = job_id(controller, "train")
    started = time.monotonic()
    timed_out = cli("status", "--watch", "--interval", "0.2s", "--timeout", "1s", env=env)
    assert timed_out.returncode == 124, timed_out.stderr
    assert time.monotonic() - started < 20
    demo_backend.finish_job(train, success=False)
    ended = cli("status", "--watch", "--job", "tr*", env=env)
    assert ended.returncode == 1, ended.stderr
    assert "FAILED" in ended.stdout and "all shown jobs have ended" in ended.stdout


def test_status_shows_the_newest_run_of_each_schedule(
    controller: Controller, repo: GitRepo, env: dict[str, str]
) -> None:
    """Two finished ticks: status lists the schedule (cron, last run) and its newest run
    (marked with the schedule's name); --all shows the older, retired run too."""
    from datetime import UTC, datetime

    repo.write("defs/worker.json", DEFINITION)
    repo.write("jobs/report.json", envelope(job("report"), schedule={"cron": "* * * * *"}))
    repo.commit("report every minute")
    for minute, second in ((0, 30), (1, 5), (2, 5), (2, 30)):
        controller.reconcile(now=datetime(2026, 11, 25, 2, minute, second, tzinfo=UTC))

    body = json.loads(cli("status", "--output", "json", env=env).stdout)
    assert [(j["name"], j["schedule"], j["status"]) for j in body["jobs"]] == [
        ("report-20261125T0202Z", "report", "SUCCEEDED")
    ]
    [schedule] = body["schedules"]
    assert (schedule["name"], schedule["cron"], schedule["last_run"]) == (
        "report",
        "* * * * *",
        "report-20261125T0202Z",
    )
    everything = json.loads(cli("status", "--all", "-o", "json", env=env).stdout)
    assert [j["name"] for j in everything["jobs"]] == [
        "report-20261125T0201Z",
        "report-20261125T0202Z",
    ]
    text = cli("status", env=env).stdout
    assert "Schedules" in text and "* * * * *" in text
