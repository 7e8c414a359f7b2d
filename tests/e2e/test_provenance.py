"""Every action is attributed to the commit (and author) that asked for it, even when
one pass applies several commits by several people."""

from __future__ import annotations

from typing import Any

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo
from tests.support.manifests import definition, job

DEFINITION = definition("trainer")


def tags_of(batch: Any, controller: Controller, name: str) -> dict[str, str]:
    job_id = controller.ledger.current_jobs()[("test-queue", name)].job_id
    return batch.describe_jobs(jobs=[job_id])["jobs"][0]["tags"]


def test_one_pass_over_several_commits_names_each_author(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """One pass applies four commits by four authors: each job's revision and author
    tags, and each ledger action, name the commit that asked for it (the removal by its
    remover), not the head; the docs-only head causes nothing."""
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/old.json", job("old"))
    base = repo.commit_as("Carol", "base")
    controller.reconcile()

    repo.write("jobs/alice.json", job("alice-job"))
    alice = repo.commit_as("Alice", "alice adds a job")
    repo.write("jobs/bob.json", job("bob-job"))
    bob = repo.commit_as("Bob", "bob adds a job")
    repo.remove("jobs/old.json")
    dave = repo.commit_as("Dave", "dave drops the old job")
    repo.write("README.md", "docs only")
    head = repo.commit_as("Erin", "erin edits docs")

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
