"""The repository's examples (the seed's files) end to end: git -> controller -> moto."""

from __future__ import annotations

from typing import Any

from controller.model.tags import (
    MANAGED_BY_TAG,
    MANIFEST_TAG,
    REVISION_TAG,
    SPEC_HASH_TAG,
    SUBMISSION_TAG,
)
from tests.conftest import Controller, GitRepo, WriteCounter
from tests.support.aws import jobs_by_name, jobs_in
from tests.support.manifests import job


def test_examples_converge_with_tags_dependencies_and_arrays(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """All 8 example jobs are submitted once, tagged back to manifest and commit,
    the pipeline's dependsOn carries real job IDs, the array job has 10 children."""
    repo.copy_examples()
    sha = repo.commit("add the seed's manifests")
    result = controller.reconcile()
    assert result.result == "ok", result.as_dict()
    counts = result.counts()
    assert counts["register_ok"] == 8 and counts["submit_ok"] == 8

    cpu = jobs_by_name(batch, "cpu-job-queue")
    gpu = jobs_by_name(batch, "gpu-job-queue")
    [preprocess] = cpu["preprocess-dataset-42"]
    [train] = gpu["train-model-42"]
    [evaluate] = cpu["evaluate-model-42"]
    assert train["dependsOn"] == [{"jobId": preprocess["jobId"], "type": "SEQUENTIAL"}]
    assert evaluate["dependsOn"] == [{"jobId": train["jobId"], "type": "SEQUENTIAL"}]

    tags = train["tags"]
    assert tags[MANAGED_BY_TAG] == "batch-gitops"
    assert tags[MANIFEST_TAG] == "jobs/ml-pipeline/training-job.json"
    assert tags[REVISION_TAG] == sha
    assert (
        tags[SPEC_HASH_TAG]
        == controller.ledger.current_jobs()[("gpu-job-queue", "train-model-42")].spec_hash
    )
    assert len(tags[SUBMISSION_TAG]) == 32

    # Jobs naming a managed definition run against the exact revision registered.
    definitions = batch.describe_job_definitions(jobDefinitionName="model-training")
    [registered] = definitions["jobDefinitions"]
    assert train["jobDefinition"] == registered["jobDefinitionArn"]
    assert registered["tags"][MANIFEST_TAG] == "definitions/model-training.yaml"

    # User tags survive next to ours.
    [report] = jobs_by_name(batch, "analytics-queue")["monthly-report"]
    assert report["tags"]["CostCenter"] == "CC-123" and report["tags"][REVISION_TAG] == sha

    [sweep] = jobs_by_name(batch, "compute-queue")["hyperparameter-sweep"]
    assert sweep["arrayProperties"]["size"] == 10
    children = batch.list_jobs(arrayJobId=sweep["jobId"])["jobSummaryList"]
    assert len(children) == 10


def test_second_pass_and_restarted_controller_write_nothing(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Same commit again: zero write calls, in the same process and after a restart."""
    repo.copy_examples()
    repo.commit()
    assert controller.reconcile().result == "ok"
    counter = WriteCounter(controller.api)
    again = controller.reconcile()
    assert again.result == "ok" and again.results == []
    assert counter.writes == []
    restarted = controller.restart()
    counter = WriteCounter(restarted.api)
    assert restarted.reconcile().results == []
    assert counter.writes == []
    assert len(jobs_in(batch, "cpu-job-queue")) == 2


def test_definition_gets_a_new_revision_only_when_it_changes(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Editing a definition registers revision 2 (and nothing else); finished jobs are
    not re-run for it, and a job added afterwards runs against revision 2."""
    repo.copy_examples()
    repo.commit()
    controller.reconcile()
    text = (repo.path / "definitions/model-training.yaml").read_text()
    repo.write("definitions/model-training.yaml", text.replace("train.py", "train_v2.py"))
    repo.commit("train v2")
    result = controller.reconcile()
    assert [(r.action.action, r.action.name, r.result) for r in result.results] == [
        ("register", "model-training", "ok")
    ]
    revisions = batch.describe_job_definitions(jobDefinitionName="model-training", status="ACTIVE")[
        "jobDefinitions"
    ]
    assert sorted(d["revision"] for d in revisions) == [1, 2]
    # A definition change does not re-run finished jobs; a new job uses revision 2.
    repo.write("jobs/new.json", job("train-again", "gpu-job-queue", "model-training"))
    repo.commit("another training run")
    controller.reconcile()
    [new] = jobs_by_name(batch, "gpu-job-queue")["train-again"]
    assert new["jobDefinition"].endswith("model-training:2")
