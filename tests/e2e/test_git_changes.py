"""Git-shaped changes: renamed files, renamed jobs, branches, sub-directories."""

from __future__ import annotations

from typing import Any

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo, WriteCounter, make_controller
from tests.support.aws import job_names as names
from tests.support.controllers import make_settings
from tests.support.manifests import definition, job

JOB = job("train")
DEFINITION = definition("trainer")


def test_moving_a_file_keeps_the_job(controller: Controller, repo: GitRepo, batch: Any) -> None:
    """Identity is (queue, name), not the path: `git mv` submits and stops nothing."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/train.json", JOB)
    repo.commit()
    controller.reconcile()
    (repo.path / "teams" / "ml").mkdir(parents=True)
    repo.git("mv", "jobs/train.json", "teams/ml/train.json")
    repo.commit("move")
    counter = WriteCounter(controller.api)
    assert controller.reconcile().results == []
    assert counter.writes == []


def test_renaming_a_job_stops_the_old_identity_and_submits_the_new(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Changing jobName in place is a new identity: the old queued run is cancelled and
    the new name submitted (AWS then holds both runs)."""
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/train.json", JOB)
    repo.commit()
    controller.reconcile()
    repo.write("jobs/train.json", {**JOB, "jobName": "train-v2"})
    repo.commit("rename the job")
    result = controller.reconcile()
    assert sorted((r.action.action, r.action.name) for r in result.results) == [
        ("cancel", "train"),
        ("submit", "train-v2"),
    ]
    assert names(batch) == ["train", "train-v2"]


def test_branch_and_subdirectory_select_what_is_applied(
    moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Any, batch: Any
) -> None:
    """Only the chosen branch's head and only files under --path are applied; paths in
    tags and the ledger stay repo-relative."""
    repo.write("batch/defs/trainer.json", DEFINITION)
    repo.write("other/job.json", {**JOB, "jobName": "outside"})
    repo.commit("main")
    repo.git("checkout", "-q", "-b", "staging")
    repo.write("batch/jobs/train.json", JOB)
    repo.commit("staging only")
    repo.git("checkout", "-q", "main")
    settings = make_settings(repo, tmp_path, branch="staging", path="batch")
    controller = make_controller(settings)
    result = controller.reconcile()
    assert result.result == "ok"
    assert names(batch) == ["train"]
    [job] = batch.describe_jobs(
        jobs=[controller.ledger.current_jobs()[("test-queue", "train")].job_id]
    )["jobs"]
    assert job["tags"]["batch-gitops/manifest"] == "batch/jobs/train.json"


def test_a_url_source_is_mirrored_and_follows_new_commits(
    moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Any, batch: Any
) -> None:
    """SRC as a file:// URL: cloned into the cache, fetched when the remote moves."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.commit()
    settings = make_settings(f"file://{repo.path}", tmp_path)
    controller = make_controller(settings)
    assert controller.reconcile().result == "ok"
    repo.write("jobs/train.json", JOB)
    sha = repo.commit("add job")
    result = controller.reconcile()
    assert result.revision == sha and names(batch) == ["train"]
    assert list((tmp_path / "cache").glob("*.git"))
