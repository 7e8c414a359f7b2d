"""The state issue's table, row by row, against an AWS that answers late and forgets
(``tests/support/consistency_proxy.py`` in front of moto): every row ends with each
job exactly once, no removed job left running and no job stopped wrongly.

Rows covered here (embedded SQLite ledger): a DescribeJobs that omits new jobs,
two ``reconcile`` runs on one ledger, a manual ``reconcile`` while the daemon runs,
the ledger lost after AWS forgot the jobs, a renamed manifest later made invalid.
The replica rows run on the shared DynamoDB ledger (tests/lease)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.demo import backend as demo_backend
from controller.model.jobstatus import ACTIVE_STATUSES, FORGOTTEN
from tests.conftest import Controller, GitRepo
from tests.reliability.conftest import (
    controller_env,
    managed_jobs,
    run_cli,
    start_cli,
    write_jobs,
)
from tests.reliability.test_aws_pressure import proxied_controller
from tests.support.consistency_proxy import ConsistencyProxy
from tests.support.waiting import wait_until

DEADLINE = 60.0


@pytest.fixture
def late_aws(moto: demo_backend.MotoBatch) -> Iterator[ConsistencyProxy]:
    """AWS Batch that lists a new job 30 s late (longer than any test here runs)."""
    proxy = ConsistencyProxy(moto.endpoint, list_lag=30.0).start()
    yield proxy
    proxy.stop()


def test_jobs_aws_does_not_list_yet_stay_active_and_are_stopped_when_removed(
    late_aws: ConsistencyProxy,
    batch: Any,
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: Any,
) -> None:
    """Row 1. DescribeJobs omits five just-submitted RUNNING jobs: they are 'not visible'
    (last status kept, never FORGOTTEN), and when their manifests are removed all five are
    stopped by ID: 0 left running, and they read FAILED once AWS lists them."""
    demo_backend.set_mode("hold")
    keys = write_jobs(repo, 5)
    repo.commit("five jobs")
    controller = proxied_controller(late_aws, repo, tmp_path, monkeypatch)
    first = controller.reconcile()
    assert first.counts().get("submit_ok") == 5
    ids = {r.job_id for r in controller.ledger.current_jobs().values() if r.job_id}
    wait_until(
        "jobs to run", lambda: all(demo_backend.job_status(i) == "RUNNING" for i in ids), DEADLINE
    )

    second = controller.reconcile()
    runs = controller.ledger.current_jobs().values()
    assert second.result == "ok" and second.plan is not None and not second.plan.actions
    assert late_aws.left_out["DescribeJobs"] >= 5
    assert all(r.not_visible and r.status in ACTIVE_STATUSES for r in runs)
    forgotten = sum(r.status == FORGOTTEN for r in runs)
    env = controller_env(late_aws.endpoint, repo, controller.settings.state)
    shown = run_cli("status", "--output", "json", env=env)
    assert {job["display"] for job in json.loads(shown.stdout)["jobs"]} == {"NOT VISIBLE YET"}
    watched = run_cli("status", "--watch", "--interval", "0.5s", "--timeout", "2s", env=env)
    assert watched.returncode == 124  # still waiting for them: never called finished

    repo.remove("jobs")
    repo.commit("remove the five jobs")
    third = controller.reconcile()
    stops = [r for r in third.results if r.action.action in ("cancel", "terminate")]
    assert len(stops) == 5 and all(r.result == "stopping" for r in stops), third.as_dict()
    left_running = [i for i in ids if demo_backend.job_status(i) in ACTIVE_STATUSES]
    assert left_running == []

    late_aws.set_lag(0.0)  # AWS catches up
    fourth = controller.reconcile()
    assert fourth.result == "ok"
    finals = {r.name: r.status for r in controller.ledger.jobs()}
    assert set(finals.values()) == {"FAILED"} and len(finals) == len(keys)
    report(
        f"jobs={len(keys)} omitted by DescribeJobs={late_aws.left_out['DescribeJobs']} "
        f"recorded FORGOTTEN={forgotten} stopped while not visible={len(stops)} left running="
        f"{len(left_running)} duplicates={sum(n - 1 for n in managed_jobs(batch).values())}"
    )


def test_two_overlapping_reconcile_runs_submit_each_job_once(
    late_aws: ConsistencyProxy, batch: Any, repo: GitRepo, tmp_path: Path, report: Any
) -> None:
    """Row 2. Two `reconcile` runs on one ledger at the same moment (overlapping cron):
    one holds the writer lock, the other exits 1 naming it; with --wait the second waits
    and then has nothing to do. 151 jobs, each exactly once."""
    late_aws.set_lag(5.0)
    keys = write_jobs(repo, 151)
    repo.commit("151 jobs")
    # Each SubmitJob takes 0.4 s: the first run's pass lasts seconds, so the others
    # certainly start while it holds the lock (however loaded the machine is).
    late_aws.slow_seconds = 0.4
    late_aws.rule = lambda operation, _: "slow" if operation == "SubmitJob" else None
    lock = tmp_path / "ledger.sqlite.lock"
    env = controller_env(late_aws.endpoint, repo, tmp_path / "ledger.sqlite")
    first = start_cli("reconcile", "--output", "json", env=env)
    # The holder writes who it is into the lock file once it holds the lock.
    wait_until("the first to lock", lambda: lock.exists() and lock.read_text().strip(), DEADLINE)
    wait_until("the first to submit", lambda: late_aws.count("SubmitJob") > 0, DEADLINE)
    second = start_cli("reconcile", "--output", "json", env=env)
    third = start_cli("reconcile", "--output", "json", "--wait", "2m", env=env)
    _, err2 = second.communicate(timeout=120)
    still_running = first.poll() is None
    _, err1 = first.communicate(timeout=120)
    out3, err3 = third.communicate(timeout=120)
    assert still_running  # the second ran while the first held the lock
    assert first.returncode == 0, err1[-2000:]
    assert second.returncode == 1 and "another writer holds the ledger" in err2, err2[-2000:]
    assert "`reconcile`" in err2 and "pid" in err2
    assert third.returncode == 0, err3[-2000:]
    submitted_by_third = json.loads(out3)["counts"].get("submit_ok", 0)
    found = managed_jobs(batch)
    assert set(found) == keys and max(found.values()) == 1
    assert submitted_by_third == 0
    report(
        f"jobs expected={len(keys)} found={len(found)} duplicates="
        f"{sum(n - 1 for n in found.values())}; second writer exit 1 naming the holder; "
        f"third (--wait 2m) submitted {submitted_by_third}"
    )


def test_manual_reconcile_while_the_daemon_runs_submits_each_job_once(
    late_aws: ConsistencyProxy, batch: Any, repo: GitRepo, tmp_path: Path, report: Any
) -> None:
    """Row 3. A manual `reconcile --wait` while the daemon is mid-pass on the same ledger:
    it waits for the daemon's pass, then finds nothing to do. 151 jobs, each once."""
    late_aws.set_lag(5.0)
    keys = write_jobs(repo, 151)
    repo.commit("151 jobs")
    state = tmp_path / "ledger.sqlite"
    env = controller_env(
        late_aws.endpoint,
        repo,
        state,
        BATCH_GITOPS_INTERVAL="1s",
        BATCH_GITOPS_LISTEN="127.0.0.1:0",
        BATCH_GITOPS_RATE_LIMIT="60",  # a pass of a few seconds: the manual run lands inside it
    )
    daemon = start_cli("run", env=env)
    try:
        wait_until("the daemon's first submit", lambda: late_aws.count("SubmitJob") > 0, DEADLINE)
        manual = run_cli("reconcile", "--output", "json", "--wait", "2m", env=env, timeout=150)
        assert manual.returncode == 0, manual.stderr[-2000:]
        wait_until("every job", lambda: len(managed_jobs(batch)) == len(keys), 90)
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)
    found = managed_jobs(batch)
    assert set(found) == keys and max(found.values()) == 1
    report(
        f"jobs expected={len(keys)} found={len(found)} duplicates="
        f"{sum(n - 1 for n in found.values())}; manual reconcile exit {manual.returncode}"
    )


def test_a_ledger_lost_after_aws_forgot_the_jobs_is_noticed_by_the_definitions(
    late_aws: ConsistencyProxy, batch: Any, repo: GitRepo, tmp_path: Path, report: Any
) -> None:
    """Row 6. 40 jobs ran and AWS forgot them (finished a week ago); the ledger file is then
    lost. The next reconcile refuses (exit 1, 0 submits): the controller's tagged ACTIVE job
    definition is still in AWS. `ledger rebuild --recover` then makes the next pass write
    nothing: 40 of 40 jobs ran once."""
    late_aws.set_lag(0.0)
    keys = write_jobs(repo, 40)
    repo.commit("40 jobs")
    state = tmp_path / "ledger.sqlite"
    env = controller_env(late_aws.endpoint, repo, state)
    assert run_cli("reconcile", env=env).returncode == 0
    statuses = {
        s["jobId"]: s["status"]
        for queue in {k[0] for k in keys}
        for s in batch.list_jobs(jobQueue=queue)["jobSummaryList"]
    }
    forgotten = late_aws.forget_finished(statuses)
    assert forgotten == 40
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)

    submits_before = late_aws.count("SubmitJob")
    refused = run_cli("reconcile", "--output", "json", env=env)
    body = json.loads(refused.stdout)
    assert refused.returncode == 1 and late_aws.count("SubmitJob") == submits_before
    assert "job definition arn:aws:batch:" in body["message"]
    assert "ledger rebuild --recover" in body["message"]

    rebuilt = run_cli("ledger", "rebuild", "--recover", "--repo", str(repo.path), env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    after = run_cli("reconcile", "--output", "json", env=env)
    assert after.returncode == 0, after.stderr[-2000:]
    assert json.loads(after.stdout)["actions"] == []
    found = managed_jobs(batch)
    assert set(found) == keys and max(found.values()) == 1
    report(
        f"jobs={len(keys)} forgotten by AWS={forgotten}; lost ledger: refused with exit 1, "
        f"SubmitJob sent=0; after rebuild --recover: writes=0, duplicates="
        f"{sum(n - 1 for n in found.values())}"
    )


def test_a_renamed_manifest_keeps_its_job_and_an_invalid_file_at_the_new_path_protects_it(
    late_aws: ConsistencyProxy,
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: Any,
) -> None:
    """Row 7. jobs/a.json is renamed to jobs/b.json (same identity): no new run, the ledger
    follows the file; a typo then makes jobs/b.json invalid: the running job is left alone
    (not terminated) and the pass is degraded, naming the file."""
    late_aws.set_lag(0.0)
    demo_backend.set_mode("hold")
    write_jobs(repo, 1)
    repo.commit("one job")
    controller: Controller = proxied_controller(late_aws, repo, tmp_path, monkeypatch)
    assert controller.reconcile().counts().get("submit_ok") == 1
    [run] = controller.ledger.current_jobs().values()
    wait_until(
        "the job to run", lambda: demo_backend.job_status(str(run.job_id)) == "RUNNING", DEADLINE
    )

    repo.git("mv", "jobs/job-0000.json", "jobs/renamed.json")
    repo.commit("rename")
    moved = controller.reconcile()
    assert moved.result == "ok" and moved.results == []
    [after] = controller.ledger.current_jobs().values()
    assert after.token == run.token and after.manifest == "jobs/renamed.json"

    repo.write("jobs/renamed.json", '{"jobName": "job-0000", "jobQueue": ')
    repo.commit("typo")
    broken = controller.reconcile()
    assert broken.result == "degraded"
    assert [e.path for e in broken.errors] == ["jobs/renamed.json"]
    stops = [r for r in broken.results if r.action.action in ("cancel", "terminate")]
    assert stops == []
    assert demo_backend.job_status(str(run.job_id)) == "RUNNING"
    runs = controller.ledger.jobs()
    assert len(runs) == 1
    report(
        f"renamed: runs={len(runs)} (no resubmit), ledger path {after.manifest}; invalid at "
        f"new path: stops={len(stops)}, job still {demo_backend.job_status(str(run.job_id))}"
    )
