"""Re-running an unchanged job from git by bumping ``options.rerun``, end to end
(real git with two authors, moto over HTTP, SQLite ledger): one new run, and the
audit trail — ledger action row and the job's own tags — names who asked."""

from __future__ import annotations

from typing import Any

from tests.conftest import Controller, GitRepo, WriteCounter
from tests.support.manifests import definition, envelope, job

DEFINITION = definition("worker")


def backfill(rerun: int) -> dict[str, Any]:
    """The backfill job's manifest with ``options.rerun`` at ``rerun``."""
    return envelope(job("backfill", definition="worker"), rerun=rerun)


def test_bumping_rerun_submits_once_and_records_who_asked(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Bob's commit bumping rerun 0 -> 1 submits exactly one new run of the unchanged
    spec; its ledger action row and its AWS tags carry Bob and his commit; the first
    run stays in the ledger as history; a second pass writes nothing."""
    repo.write("defs/worker.json", DEFINITION)
    repo.write("jobs/backfill.yaml", backfill(0))
    repo.commit("backfill")
    controller.reconcile()
    first = controller.ledger.current_jobs()[("test-queue", "backfill")]

    repo.git("config", "user.name", "Bob Bumper")
    repo.git("config", "user.email", "bob@example.com")
    repo.write("jobs/backfill.yaml", backfill(1))
    bump = repo.commit("re-run backfill after the upstream fix")
    counter = WriteCounter(controller.api)
    result = controller.reconcile()
    assert counter.writes == ["SubmitJob"]
    [submit] = result.results
    assert (submit.action.action, submit.action.reason, submit.result) == (
        "submit",
        "changed",
        "ok",
    )

    second = controller.ledger.current_jobs()[("test-queue", "backfill")]
    assert second.job_id != first.job_id
    assert (second.revision, second.author) == (bump, "Bob Bumper <bob@example.com>")
    [row] = [a for a in controller.ledger.actions(revision=bump) if a["action"] == "submit"]
    assert (row["author"], row["aws_id"], row["name"]) == (
        "Bob Bumper <bob@example.com>",
        second.job_id,
        "backfill",
    )
    tags = batch.describe_jobs(jobs=[second.job_id])["jobs"][0]["tags"]
    assert tags["batch-gitops/revision"] == bump
    assert tags["batch-gitops/author"] == "Bob Bumper bob@example.com"  # <> are not tag-safe
    old = batch.describe_jobs(jobs=[first.job_id])["jobs"][0]
    assert old["tags"]["batch-gitops/author"] == "Ada Author ada@example.com"
    history = [r for r in controller.ledger.jobs() if r.name == "backfill"]
    assert [(r.job_id, r.is_current) for r in history] == [
        (first.job_id, False),
        (second.job_id, True),
    ]
    assert counter.writes == ["SubmitJob"] and controller.reconcile().results == []
    assert counter.writes == ["SubmitJob"]
