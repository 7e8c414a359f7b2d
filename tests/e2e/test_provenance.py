"""Every action is attributed to the commit (and author) that asked for it, even when
one pass applies several commits by several people."""

from __future__ import annotations

from typing import Any

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo

DEFINITION = {
    "jobDefinitionName": "trainer",
    "type": "container",
    "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
}


def job(name: str) -> dict[str, str]:
    return {"jobName": name, "jobQueue": "test-queue", "jobDefinition": "trainer"}


def commit_as(repo: GitRepo, who: str, message: str) -> str:
    repo.git("add", "-A")
    repo.git(
        "-c",
        f"user.name={who}",
        "-c",
        f"user.email={who.lower()}@example.com",
        "commit",
        "-q",
        "-m",
        message,
    )
    return repo.git("rev-parse", "HEAD")


def tags_of(batch: Any, controller: Controller, name: str) -> dict[str, str]:
    job_id = controller.ledger.current_jobs()[("test-queue", name)].job_id
    return batch.describe_jobs(jobs=[job_id])["jobs"][0]["tags"]


def test_one_pass_over_several_commits_names_each_author(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/old.json", job("old"))
    base = commit_as(repo, "Carol", "base")
    controller.reconcile()

    repo.write("jobs/alice.json", job("alice-job"))
    alice = commit_as(repo, "Alice", "alice adds a job")
    repo.write("jobs/bob.json", job("bob-job"))
    bob = commit_as(repo, "Bob", "bob adds a job")
    repo.remove("jobs/old.json")
    dave = commit_as(repo, "Dave", "dave drops the old job")
    repo.write("README.md", "docs only")
    head = commit_as(repo, "Erin", "erin edits docs")

    result = controller.reconcile()  # one pass applies all four commits
    assert result.revision == head
    assert tags_of(batch, controller, "alice-job")["batch-gitops/revision"] == alice
    assert tags_of(batch, controller, "alice-job")["batch-gitops/author"] == (
        "Alice alice@example.com"
    )
    assert tags_of(batch, controller, "bob-job")["batch-gitops/revision"] == bob
    assert tags_of(batch, controller, "old")["batch-gitops/revision"] == base

    actions = {(a["action"], a["name"]): a for a in controller.ledger.actions()}
    assert actions[("submit", "bob-job")]["author"] == "Bob <bob@example.com>"
    assert actions[("cancel", "old")]["revision"] == dave
    assert actions[("cancel", "old")]["author"] == "Dave <dave@example.com>"
    # The docs-only head caused nothing.
    assert not [a for a in controller.ledger.actions() if a["revision"] == head]
