"""The ledger under damage: a corrupt file and a lost file are reported clearly (the
file and what to do), a pass never runs blind on an empty ledger next to our jobs,
and ``batch-gitops ledger rebuild`` recovers it from AWS tags so well that the next
pass writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo, WriteCounter
from tests.reliability.conftest import DEFINITION, controller_env, managed_jobs, run_cli

JOBS = {
    "prepare": {"jobName": "prepare", "jobQueue": "test-queue", "jobDefinition": "worker"},
    "train": {
        "jobName": "train",
        "jobQueue": "cpu-job-queue",
        "jobDefinition": "worker",
        "dependsOn": [{"jobId": "prepare"}],
    },
    "report": {"jobName": "report", "jobQueue": "test-queue", "jobDefinition": "worker"},
}


def history(repo: GitRepo, controller: Controller) -> None:
    """Three passes with real history: a changed job (two runs), a changed definition
    (two revisions) and a removed job."""
    repo.write("defs/worker.json", DEFINITION)
    for name, job in JOBS.items():
        repo.write(f"jobs/{name}.json", job)
    repo.commit("three jobs")
    assert controller.reconcile().result == "ok"
    repo.write("jobs/report.json", {**JOBS["report"], "parameters": {"day": "2"}})
    repo.write("defs/worker.json", {**DEFINITION, "parameters": {"x": "1"}})
    repo.commit("change report and worker")
    assert controller.reconcile().result == "ok"
    repo.remove("jobs/train.json")
    repo.commit("drop train")
    assert controller.reconcile().result == "ok"


def drop_ledger(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("damage", ["garbage", "torn-page"])
def test_corrupt_ledger_is_reported_with_the_file_and_the_fix(
    damage: str, controller: Controller, repo: GitRepo, moto: demo_backend.MotoBatch
) -> None:
    """A ledger that is not SQLite, or whose pages were overwritten, stops every
    command with exit 1 and a message naming the file and `ledger rebuild`; then
    `ledger rebuild --replace` keeps the broken file aside and the next pass writes
    nothing to AWS."""
    history(repo, controller)
    state = controller.settings.state
    controller.ledger.close()
    data = bytearray(state.read_bytes())
    if damage == "garbage":
        data[:100] = b"this is not a database" * 4 + b"\0" * 12
    else:
        for offset in range(4096, len(data), 4096):  # every page after the header page
            data[offset + 8 : offset + 200] = b"\xff" * 192
    state.write_bytes(bytes(data))

    result = run_cli("reconcile", env=controller_env(moto.endpoint, repo, state))

    assert result.returncode == 1
    assert f"{state}: cannot open the ledger" in result.stderr
    assert f"batch-gitops ledger rebuild --state {state}" in result.stderr
    assert "Move the file aside" in result.stderr

    # The fix, as the message says (--replace moves the broken file aside itself).
    env = controller_env(moto.endpoint, repo, state)
    rebuilt = run_cli("ledger", "rebuild", "--replace", "--output", "json", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    aside = Path(json.loads(rebuilt.stdout)["moved_aside"])
    assert aside.read_bytes() == bytes(data)  # kept for diagnosis, untouched
    fresh = controller.restart()
    counter = WriteCounter(fresh.api)
    assert fresh.reconcile().result == "ok"
    assert counter.writes == []


def test_lost_ledger_refuses_to_run_blind_then_rebuild_makes_the_next_pass_write_nothing(
    controller: Controller,
    repo: GitRepo,
    moto: demo_backend.MotoBatch,
    batch: Any,
    report: Any,
) -> None:
    """After the ledger file is deleted, `reconcile` exits 1 naming the file and the
    rebuild command and submits nothing; `ledger rebuild --repo` restores job runs
    and definition revisions from tags; the next pass makes zero AWS writes."""
    history(repo, controller)
    before = managed_jobs(batch)
    state = controller.settings.state
    controller.ledger.close()
    drop_ledger(state)
    env = controller_env(moto.endpoint, repo, state)

    refused = run_cli("reconcile", "--output", "json", env=env)
    assert refused.returncode == 1
    body = json.loads(refused.stdout)
    assert body["result"] == "error" and body["actions"] == []
    assert f"{state}: the ledger is empty" in body["message"]
    assert f"batch-gitops ledger rebuild --recover --state {state}" in body["message"]
    assert managed_jobs(batch) == before  # nothing was submitted again

    drop_ledger(state)
    rebuilt = run_cli("ledger", "rebuild", "--output", "json", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    summary = json.loads(rebuilt.stdout)
    assert summary["queues"] == ["test-queue"]  # the queues the manifests name
    again = run_cli("ledger", "rebuild", env=env)
    assert again.returncode == 1 and "already holds records" in again.stderr

    fresh = controller.restart()
    counter = WriteCounter(fresh.api)
    result = fresh.reconcile()
    report(
        f"rebuilt runs={summary['jobs']} keys={summary['keys']} "
        f"definitions={summary['definitions']} listed={summary['listed']}; "
        f"writes on the next pass={counter.writes}"
    )
    assert result.result == "ok", result.message
    assert counter.writes == []
    assert [r.action.action for r in result.results] == []
    assert summary["definitions"] == 2  # both revisions of worker
    assert summary["keys"] == 2  # prepare and report: train's queue is no longer named
    assert summary["jobs"] == 3  # report ran twice
    current = fresh.ledger.current_jobs()
    assert current[("test-queue", "report")].spec_hash != ""
    assert managed_jobs(batch) == before


def test_rebuild_with_queue_recovers_removed_jobs_and_never_prunes_them(
    controller: Controller,
    repo: GitRepo,
    moto: demo_backend.MotoBatch,
    batch: Any,
) -> None:
    """`ledger rebuild --queue` also scans queues no manifest names any more; a job
    recovered that way whose manifest is gone is recorded with pruning off (its
    options are unknown), so the next pass stops nothing and writes nothing."""
    demo_backend.set_mode("queued")  # jobs stay SUBMITTED: a prune would cancel them
    repo.write("defs/worker.json", DEFINITION)
    repo.write("jobs/prepare.json", JOBS["prepare"])
    repo.write("jobs/train.json", {**JOBS["train"], "dependsOn": []})
    repo.commit("two jobs")
    assert controller.reconcile().result == "ok"
    state = controller.settings.state
    controller.ledger.close()
    drop_ledger(state)
    repo.remove("jobs/train.json")  # removed while the ledger was gone
    repo.commit("drop train")
    env = controller_env(moto.endpoint, repo, state)
    rebuilt = run_cli("ledger", "rebuild", "--queue", "cpu-job-queue", "--output", "json", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["queues"] == ["cpu-job-queue", "test-queue"]

    fresh = controller.restart()
    counter = WriteCounter(fresh.api)
    result = fresh.reconcile()
    assert counter.writes == []
    train = fresh.ledger.current_jobs()[("cpu-job-queue", "train")]
    assert train.prune is False
    assert result.result == "ok"
    status = batch.describe_jobs(jobs=[train.job_id])["jobs"][0]["status"]
    assert status == "SUBMITTED"


def test_empty_ledger_check_skips_a_queue_that_does_not_exist(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """The first pass checks AWS for our jobs in the queues the manifests use; a
    queue that does not exist (a typo) holds none, so the pass goes on: the good
    job is submitted and only the bad one fails, naming the queue."""
    repo.write("defs/worker.json", DEFINITION)
    repo.write("jobs/good.json", JOBS["prepare"])
    repo.write(
        "jobs/typo.json",
        {"jobName": "typo", "jobQueue": "no-such-queue", "jobDefinition": "worker"},
    )
    repo.commit("one good, one typo")
    result = controller.reconcile()
    outcomes = {r.action.name: r for r in result.results if r.action.kind == "job"}
    assert result.result == "degraded"
    assert outcomes["prepare"].result == "ok"
    assert outcomes["typo"].result == "failed" and "no-such-queue" in outcomes["typo"].message
    assert set(managed_jobs(batch)) == {("test-queue", "prepare")}


def test_plan_ledger_assumes_forgotten_jobs_ran_and_is_never_applied(
    controller: Controller, repo: GitRepo, moto: demo_backend.MotoBatch, tmp_path: Path
) -> None:
    """A pull request's plan in CI, without the controller's ledger: after AWS forgot one
    of main's finished jobs, a plain rebuild plans it again (it looks new); a rebuild with
    --assume-applied plans only the pull request's own job. A pass (`reconcile`, `run`) refuses
    that ledger (it records runs that may never have happened), and write nothing."""
    repo.write("defs/worker.json", DEFINITION)
    repo.write("jobs/prepare.json", JOBS["prepare"])
    repo.write("jobs/report.json", JOBS["report"])
    repo.commit("main: two jobs")
    assert controller.reconcile().result == "ok"
    demo_backend.forget_job(controller.ledger.current_jobs()[("test-queue", "report")].job_id)
    base = repo.git("rev-parse", "HEAD").strip()
    repo.git("checkout", "-q", "-b", "pr")
    repo.write("jobs/extra.json", {**JOBS["prepare"], "jobName": "extra"})
    repo.commit("pr: one more job")

    def plan_with(state: Path, *rebuild_flags: str) -> list[tuple[str, str]]:
        env = controller_env(moto.endpoint, repo, state)
        rebuilt = run_cli("ledger", "rebuild", *rebuild_flags, "--branch", base, env=env)
        assert rebuilt.returncode == 0, rebuilt.stderr
        planned = run_cli("plan", "--branch", "pr", "--output", "json", env=env)
        assert planned.returncode == 2, planned.stdout + planned.stderr
        actions = json.loads(planned.stdout)["actions"]
        return sorted((a["action"], a["name"]) for a in actions)

    assert plan_with(tmp_path / "plain.sqlite") == [("submit", "extra"), ("submit", "report")]
    assumed = tmp_path / "assumed.sqlite"
    assert plan_with(assumed, "--assume-applied") == [("submit", "extra")]

    env = controller_env(moto.endpoint, repo, assumed)
    jobs_before = managed_jobs(moto.client(), ("test-queue",))
    refused = run_cli("reconcile", "--branch", "pr", env=env)
    assert refused.returncode == 1
    assert "--assume-applied" in refused.stdout + refused.stderr
    assert managed_jobs(moto.client(), ("test-queue",)) == jobs_before
