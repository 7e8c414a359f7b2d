"""Changes and removals against moto with jobs held queued or running.

moto's Docker-less backend finishes jobs inside SubmitJob; controller.demo.backend
holds them SUBMITTED ("queued") or walks them to RUNNING ("hold") so CancelJob and
TerminateJob can be observed doing (or, for CancelJob on RUNNING, not doing) work.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo, WriteCounter
from tests.support.aws import describe, start_job, wait_for_status
from tests.support.controllers import make_api
from tests.support.fault_proxy import FaultProxy
from tests.support.manifests import definition, envelope, job

JOB = job("train")
DEFINITION = definition("trainer")


def current_id(controller: Controller, name: str = "train") -> str:
    job_id = controller.ledger.current_jobs()[("test-queue", name)].job_id
    assert job_id
    return job_id


def setup_repo(repo: GitRepo, manifest: dict[str, Any] = JOB) -> None:
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/train.json", manifest)
    repo.commit("train")


def queued_then_removed(controller: Controller, repo: GitRepo, batch: Any) -> str:
    """train submitted and held SUBMITTED, then its manifest removed (not yet applied)."""
    demo_backend.set_mode("queued")
    setup_repo(repo)
    controller.reconcile()
    job_id = current_id(controller)
    assert describe(batch, job_id)["status"] == "SUBMITTED"
    repo.remove("jobs/train.json")
    repo.commit("drop train")
    return job_id


def test_removing_a_queued_job_cancels_it(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Removing a SUBMITTED job's manifest cancels it: one CancelJob, result ok, and the
    job ends FAILED with a reason that says its manifest was removed."""
    job_id = queued_then_removed(controller, repo, batch)
    counter = WriteCounter(controller.api)
    result = controller.reconcile()
    assert [(r.action.action, r.result) for r in result.results] == [("cancel", "ok")]
    assert counter.writes == ["CancelJob"]
    job = describe(batch, job_id)
    assert job["status"] == "FAILED" and "removed" in job["statusReason"]


def test_removing_a_running_job_terminates_it(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Removing a RUNNING job's manifest terminates it (one TerminateJob, no CancelJob);
    the ledger records FAILED and retired at once, and the next pass does nothing."""
    demo_backend.set_mode("hold", step=0.05)
    setup_repo(repo)
    controller.reconcile()
    job_id = current_id(controller)
    wait_for_status(job_id, "RUNNING")
    repo.remove("jobs/train.json")
    repo.commit("drop train")
    counter = WriteCounter(controller.api)
    result = controller.reconcile()
    assert [(r.action.action, r.result) for r in result.results] == [("terminate", "ok")]
    assert counter.writes == ["TerminateJob"]  # CancelJob would do nothing to RUNNING
    assert describe(batch, job_id)["status"] == "FAILED"
    # The ledger knows at once (status, gauge and history do not lag a pass).
    record = controller.ledger.current_jobs()[("test-queue", "train")]
    assert (record.status, record.retired) == ("FAILED", True)
    assert controller.reconcile().results == []


def test_cancel_escalates_when_the_job_started_meanwhile(
    controller: Controller,
    repo: GitRepo,
    batch: Any,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A removed job is queued when the pass reads it, so it is planned and stopped as a
    cancel; AWS starts it between the stop's own read and its CancelJob (the proxy's
    hook does, as AWS's scheduler would), so CancelJob does nothing: the re-read finds
    it started and the controller escalates to TerminateJob. Result: one cancel action,
    ok, "escalated to TerminateJob"; writes CancelJob then TerminateJob; the job FAILED."""
    job_id = queued_then_removed(controller, repo, batch)

    started: list[str] = []

    def scheduler_starts_the_job(operation: str, index: int, body: bytes) -> None:
        if operation == "CancelJob" and not started:
            start_job(job_id, "STARTING")
            started.append(demo_backend.job_status(job_id))

    proxy.hook = scheduler_starts_the_job
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", proxy.endpoint)
    controller.api = make_api()
    counter = WriteCounter(controller.api)
    result = controller.reconcile()

    assert started == ["STARTING"]  # the job started before AWS saw the CancelJob
    [outcome] = result.results
    assert (outcome.action.action, outcome.action.reason) == ("cancel", "removed")
    assert outcome.result == "ok" and "escalated to TerminateJob" in outcome.message
    assert counter.writes == ["CancelJob", "TerminateJob"]
    assert proxy.count("CancelJob") == 1 and proxy.count("TerminateJob") == 1
    assert describe(batch, job_id)["status"] == "FAILED"


def test_changed_spec_replaces_the_running_job(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """A changed spec terminates the RUNNING run ("replaced") and submits a new one
    ("changed") carrying the new parameters; the old run ends FAILED."""
    demo_backend.set_mode("hold", step=0.05)
    setup_repo(repo)
    controller.reconcile()
    old = current_id(controller)
    wait_for_status(old, "RUNNING")
    repo.write("jobs/train.json", {**JOB, "parameters": {"epochs": "20"}})
    repo.commit("more epochs")
    result = controller.reconcile()
    assert [(r.action.action, r.action.reason, r.result) for r in result.results] == [
        ("terminate", "replaced", "ok"),
        ("submit", "changed", "ok"),
    ]
    new = current_id(controller)
    assert new != old and describe(batch, old)["status"] == "FAILED"
    assert describe(batch, new)["parameters"]["epochs"] == "20"


def test_changed_spec_with_on_change_keep_leaves_the_old_run(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """With options.onChange: keep, a changed spec only submits: the old queued run is
    left SUBMITTED."""
    demo_backend.set_mode("queued")
    keep = envelope(JOB, onChange="keep")
    setup_repo(repo, keep)
    controller.reconcile()
    old = current_id(controller)
    repo.write("jobs/train.json", {**keep, "spec": {**JOB, "parameters": {"a": "b"}}})
    repo.commit("change")
    result = controller.reconcile()
    assert [r.action.action for r in result.results] == ["submit"]
    assert describe(batch, old)["status"] == "SUBMITTED"


def test_invalid_manifest_keeps_its_job_running(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """A typo is reported and skipped; the job it describes is not pruned."""
    demo_backend.set_mode("queued")
    setup_repo(repo)
    controller.reconcile()
    job_id = current_id(controller)
    repo.write("jobs/train.json", '{"jobName": "train", "jobQueu": "test-queue"')
    repo.commit("broken")
    result = controller.reconcile()
    assert result.result == "degraded" and result.results == []
    assert result.errors[0].path == "jobs/train.json"
    assert describe(batch, job_id)["status"] == "SUBMITTED"


def test_removing_a_definition_deregisters_our_revisions(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Removing a definition's manifest deregisters both revisions the controller
    registered and leaves the revision registered by hand ACTIVE."""
    setup_repo(repo)
    controller.reconcile()
    repo.write("defs/trainer.json", {**DEFINITION, "parameters": {"v": "2"}})
    repo.commit("v2")
    controller.reconcile()
    # A revision registered by hand (not ours) under the same name.
    manual = batch.register_job_definition(**{**DEFINITION, "parameters": {"v": "manual"}})
    repo.remove("defs/trainer.json")
    repo.remove("jobs/train.json")
    repo.write("README.md", "an otherwise empty repository would hold every prune")
    repo.write("jobs/other.json", job("other", definition="elsewhere"))
    repo.commit("drop trainer")
    result = controller.reconcile()
    assert sorted(r.action.action for r in result.results if r.action.kind != "job") == [
        "deregister",
        "deregister",
    ]
    active = batch.describe_job_definitions(jobDefinitionName="trainer", status="ACTIVE")[
        "jobDefinitions"
    ]
    assert [d["jobDefinitionArn"] for d in active] == [manual["jobDefinitionArn"]]


def test_jobs_not_created_by_the_controller_are_never_touched(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """A job of the same name submitted by hand (no managed-by tag) stays SUBMITTED when
    the manifest goes, and a stop aimed straight at it is refused, naming the tag."""
    demo_backend.set_mode("queued")
    setup_repo(repo)
    controller.reconcile()
    by_hand = batch.submit_job(jobName="train", jobQueue="test-queue", jobDefinition="trainer")[
        "jobId"
    ]
    repo.remove("jobs/train.json")
    repo.commit("drop")
    controller.reconcile()
    assert describe(batch, by_hand)["status"] == "SUBMITTED"
    # Even if the ledger were pointed at it, the missing managed-by tag stops us.
    from controller.engine.apply import Applier
    from controller.model.plan import Action
    from controller.model.records import Provenance

    applier = Applier(controller.api, controller.ledger, Provenance("f" * 40), "batch-gitops", "p1")
    refused = applier._stop(
        Action(
            "cancel", "job", "train", "x.json", queue="test-queue", reason="removed", aws_id=by_hand
        )
    )
    assert refused.result == "failed" and "managed-by" in refused.message
    assert describe(batch, by_hand)["status"] == "SUBMITTED"


def test_removed_then_restored_manifest_does_not_run_again(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Deleting a finished job's file and reverting it is not a reason to re-run it."""
    setup_repo(repo)
    controller.reconcile()
    job_id = current_id(controller)
    repo.remove("jobs/train.json")
    repo.commit("drop")
    assert controller.reconcile().results == []
    repo.write("jobs/train.json", JOB)
    repo.commit("revert")
    assert controller.reconcile().results == []
    assert current_id(controller) == job_id
