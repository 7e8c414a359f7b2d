"""Prune safety against AWS (real git + moto, jobs held SUBMITTED so a prune would
really cancel them): an unreadable source, an invalid manifest, the mass-prune
guard, ``options.prune: false`` and ``--no-prune`` never cancel anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo, WriteCounter, make_controller
from tests.reliability.conftest import controller_env, run_cli, write_jobs
from tests.support.controllers import make_settings
from tests.support.manifests import definition, envelope, job


@pytest.fixture
def queued(moto: demo_backend.MotoBatch) -> None:
    """Jobs stay SUBMITTED: active, so removing a manifest would cancel them."""
    demo_backend.set_mode("queued")


def statuses(batch: Any, controller: Controller) -> dict[str, str]:
    ids = [r.job_id for r in controller.ledger.current_jobs().values() if r.job_id]
    return {j["jobName"]: j["status"] for j in batch.describe_jobs(jobs=ids)["jobs"]}


def with_settings(controller: Controller, **changes: Any) -> Controller:
    controller.settings = controller.settings.model_copy(update=changes)
    return controller


def test_vanished_repository_prunes_nothing_and_says_why(
    queued: None, controller: Controller, repo: GitRepo, batch: Any, tmp_path: Path
) -> None:
    """The repository path disappears: the pass is a source error naming the path,
    makes no AWS write, and every job stays SUBMITTED; when it is back, the next
    pass changes nothing."""
    write_jobs(repo, 4)
    repo.commit("jobs")
    assert controller.reconcile().result == "ok"
    moved = tmp_path / "moved-away"
    shutil.move(repo.path, moved)
    counter = WriteCounter(controller.api)

    result = controller.reconcile()

    assert result.result == "source-error"
    assert str(repo.path) in result.message
    assert counter.writes == []
    assert set(statuses(batch, controller).values()) == {"SUBMITTED"}
    shutil.move(moved, repo.path)
    assert controller.reconcile().results == []
    assert counter.writes == []


def test_vanished_manifest_directory_prunes_nothing(
    queued: None, moto: demo_backend.MotoBatch, repo: GitRepo, batch: Any, tmp_path: Path
) -> None:
    """With --path batch, a commit that deletes the whole batch/ directory is a
    source error ("path-missing"), not the removal of every job: nothing is cancelled."""
    controller = make_controller(make_settings(repo, tmp_path, path="batch"))
    for n in range(3):
        repo.write(f"batch/job-{n}.json", job(f"job-{n}", definition="worker"))
    repo.write("batch/worker.json", definition("worker"))
    repo.commit("jobs")
    assert controller.reconcile().result == "ok"
    repo.remove("batch")
    repo.write("README.md", "moved elsewhere")
    repo.commit("oops, deleted the manifest directory")
    counter = WriteCounter(controller.api)

    result = controller.reconcile()

    assert result.result == "source-error"
    assert "'batch' does not exist" in result.message
    assert counter.writes == []
    assert set(statuses(batch, controller).values()) == {"SUBMITTED"}


def test_unreachable_remote_prunes_nothing(
    queued: None, moto: demo_backend.MotoBatch, repo: GitRepo, batch: Any, tmp_path: Path
) -> None:
    """A file:// remote that vanishes (fetch fails) prunes nothing."""
    write_jobs(repo, 3)
    repo.commit("jobs")
    bare = tmp_path / "remote.git"
    repo.git("clone", "-q", "--bare", str(repo.path), str(bare))
    controller = make_controller(make_settings(f"file://{bare}", tmp_path))
    assert controller.reconcile().result == "ok"
    shutil.rmtree(bare)
    counter = WriteCounter(controller.api)
    result = controller.reconcile()
    assert result.result != "ok"
    assert counter.writes == []
    assert set(statuses(batch, controller).values()) == {"SUBMITTED"}


def test_invalid_manifest_keeps_its_job_until_fixed_or_deleted(
    queued: None, controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """A typo in a job's manifest is reported (file and field) and its job is not
    cancelled; fixing it changes nothing in AWS; deleting it cancels the job."""
    write_jobs(repo, 2)
    repo.commit("jobs")
    assert controller.reconcile().result == "ok"
    good = json.loads((repo.path / "jobs/job-0000.json").read_text())
    repo.write("jobs/job-0000.json", {**good, "jobQueu": "test-queue"})
    repo.commit("typo")
    counter = WriteCounter(controller.api)

    broken = controller.reconcile()
    assert broken.result == "degraded"
    assert any(e.path == "jobs/job-0000.json" and "jobQueu" in str(e) for e in broken.errors), (
        broken.errors
    )
    assert counter.writes == []
    assert statuses(batch, controller)["job-0000"] == "SUBMITTED"

    repo.write("jobs/job-0000.json", good)
    repo.commit("fix")
    assert controller.reconcile().results == []
    assert counter.writes == []
    repo.remove("jobs/job-0000.json")
    repo.commit("really remove")
    removed = controller.reconcile()
    assert [(r.action.action, r.result) for r in removed.results] == [("cancel", "ok")]
    assert statuses(batch, controller)["job-0000"] == "FAILED"


def test_mass_prune_is_held_reported_and_applied_only_when_acknowledged(
    queued: None,
    controller: Controller,
    repo: GitRepo,
    moto: demo_backend.MotoBatch,
    batch: Any,
    report: Any,
) -> None:
    """Removing 11 of 12 active jobs: `plan --output json` exits 2 and lists them under
    "held" with a "held_reason"; reconcile cancels nothing, logs "prunes_held" and
    sets batch_gitops_held_prunes to 11; with --allow-mass-prune all 11 are cancelled."""
    write_jobs(repo, 12)
    repo.commit("12 jobs")
    assert controller.reconcile().result == "ok"
    for n in range(1, 12):
        repo.remove(f"jobs/job-{n:04d}.json")
    repo.commit("remove 11")
    env = controller_env(moto.endpoint, repo, controller.settings.state)

    planned = run_cli("plan", "--output", "json", env=env)
    assert planned.returncode == 2, planned.stderr
    body = json.loads(planned.stdout)
    assert len(body["held"]) == 11
    assert {a["action"] for a in body["held"]} == {"cancel"}
    assert "11 of 12 active jobs" in body["held_reason"]
    assert "--allow-mass-prune" in body["held_reason"]

    counter = WriteCounter(controller.api)
    with capture_logs() as logs:
        held = controller.reconcile()
    assert counter.writes == []
    [warning] = [e for e in logs if e["event"] == "prunes_held"]
    assert warning["count"] == 11 and "--allow-mass-prune" in warning["reason"]
    assert held.plan is not None and len(held.plan.held) == 11
    assert REGISTRY.get_sample_value("batch_gitops_held_prunes") == 11
    assert set(statuses(batch, controller).values()) == {"SUBMITTED"}

    acknowledged = run_cli("plan", "--allow-mass-prune", "--output", "json", env=env)
    assert json.loads(acknowledged.stdout)["held"] == []
    applied = with_settings(controller, allow_mass_prune=True).reconcile()
    assert sorted(r.action.action for r in applied.results) == ["cancel"] * 11
    assert REGISTRY.get_sample_value("batch_gitops_held_prunes") == 0
    final = statuses(batch, controller)
    report(f"held={len(held.plan.held) if held.plan else 0} then cancelled={len(applied.results)}")
    assert sorted(final.values()) == ["FAILED"] * 11 + ["SUBMITTED"]


def test_empty_repository_never_prunes_without_acknowledgement(
    queued: None, controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """A commit that deletes every manifest (even just 2 jobs and their definition) is
    held: no cancel, no deregistration, and the reason says why."""
    write_jobs(repo, 2)
    repo.commit("jobs")
    assert controller.reconcile().result == "ok"
    repo.remove("jobs")
    repo.remove("defs")
    repo.commit("empty")
    counter = WriteCounter(controller.api)
    result = controller.reconcile()
    assert result.plan is not None
    assert sorted(a.action for a in result.plan.held) == ["cancel", "cancel", "deregister"]
    assert "no manifests at all" in result.plan.held_reason
    assert counter.writes == []
    assert set(statuses(batch, controller).values()) == {"SUBMITTED"}


def test_prune_false_and_no_prune_never_stop_a_removed_job(
    queued: None, controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """A manifest with options.prune: false is removed: its job keeps running. With
    --no-prune, another removal is only reported (held, "pruning is disabled")."""
    write_jobs(repo, 3)
    keep = json.loads((repo.path / "jobs/job-0000.json").read_text())
    repo.write("jobs/job-0000.json", envelope(keep, prune=False))
    repo.commit("jobs")
    assert controller.reconcile().result == "ok"
    repo.remove("jobs/job-0000.json")
    repo.commit("remove the unprunable one")
    counter = WriteCounter(controller.api)
    result = controller.reconcile()
    assert result.results == [] and result.plan is not None and result.plan.held == []
    assert counter.writes == []

    repo.remove("jobs/job-0001.json")
    repo.commit("remove another, with pruning off")
    reported = with_settings(controller, prune=False).reconcile()
    assert reported.plan is not None
    assert [a.name for a in reported.plan.held] == ["job-0001"]
    assert "pruning is disabled" in reported.plan.held_reason
    assert counter.writes == []
    assert set(statuses(batch, controller).values()) == {"SUBMITTED"}
