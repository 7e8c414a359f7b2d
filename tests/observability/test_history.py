"""`batch-gitops history` answers the auditor's three questions from the ledger, across two
commits by two authors, with AWS's own tags agreeing with the answer."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo
from tests.support.cli import run_cli
from tests.support.manifests import definition
from tests.support.manifests import echo_job as job


@pytest.fixture
def controller(store_controller: Controller) -> Controller:
    """Every history query on both ledger stores: a SQLite file and a DynamoDB table."""
    return store_controller


DEFINITION = definition("trainer")


def history(state: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """`batch-gitops history --state STATE ARGS` in its own process."""
    env = {**os.environ, "BATCH_GITOPS_LOG_FORMAT": "json"}
    return run_cli("history", "--state", str(state), *args, env=env)


def history_json(state: Path | str, *args: str) -> dict[str, Any]:
    result = history(state, *args, "--output", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture
def two_commits(
    controller: Controller, repo: GitRepo, moto: demo_backend.MotoBatch
) -> dict[str, str]:
    """Commit A (Ada) adds alpha and beta; commit B (Bob) removes alpha and changes beta.
    Jobs stay queued, so B cancels alpha and replaces beta's run."""
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/alpha.json", job("alpha"))
    repo.write("jobs/beta.json", job("beta"))
    first = repo.commit("add alpha and beta")
    assert controller.reconcile().result == "ok"
    ids = {r.name: r.job_id for r in controller.ledger.current_jobs().values()}
    repo.git("config", "user.name", "Bob Builder")
    repo.git("config", "user.email", "bob@example.com")
    repo.remove("jobs/alpha.json")
    repo.write("jobs/beta.json", job("beta", "2"))
    second = repo.commit("drop alpha, change beta")
    assert controller.reconcile().result == "ok"
    # The next pass reads the cancelled runs back (FAILED) and marks alpha's as removed.
    assert controller.reconcile().result == "ok"
    new_beta = controller.ledger.current_jobs()[("test-queue", "beta")].job_id
    assert new_beta and new_beta != ids["beta"]
    return {
        "A": first,
        "B": second,
        "alpha": str(ids["alpha"]),
        "beta1": str(ids["beta"]),
        "beta2": new_beta,
    }


def test_commit_to_jobs_manifest_over_time_and_job_to_commit(
    two_commits: dict[str, str], controller: Controller, batch: Any
) -> None:
    """--commit lists the runs and actions a commit caused (by a prefix); --manifest shows a
    file's whole story in order; --job names the commit, author and manifest of a job and
    every later action on it; AWS's tags on the job name the same commit and author."""
    state = controller.settings.state
    ada, bob = "Ada Author <ada@example.com>", "Bob Builder <bob@example.com>"

    caused_by_a = history_json(state, "--commit", two_commits["A"][:8])
    assert {(r["name"], r["job_id"]) for r in caused_by_a["runs"]} == {
        ("alpha", two_commits["alpha"]),
        ("beta", two_commits["beta1"]),
    }
    assert {r["author"] for r in caused_by_a["runs"]} == {ada}
    assert [(a["action"], a["name"], a["result"]) for a in caused_by_a["actions"]] == [
        ("register", "trainer", "ok"),
        ("submit", "alpha", "ok"),
        ("submit", "beta", "ok"),
    ]
    assert all(
        a["commit"] == two_commits["A"] and a["committed_at"] for a in caused_by_a["actions"]
    )

    caused_by_b = history_json(state, "--commit", two_commits["B"])
    assert [(r["name"], r["job_id"]) for r in caused_by_b["runs"]] == [
        ("beta", two_commits["beta2"])
    ]
    assert sorted((a["action"], a["name"], a["aws_id"]) for a in caused_by_b["actions"]) == sorted(
        [
            ("cancel", "alpha", two_commits["alpha"]),
            ("cancel", "beta", two_commits["beta1"]),
            ("submit", "beta", two_commits["beta2"]),
        ]
    )
    assert {a["author"] for a in caused_by_b["actions"]} == {bob}

    beta = history_json(state, "--manifest", "jobs/beta.json")
    assert [(r["job_id"], r["current"], r["commit"]) for r in beta["runs"]] == [
        (two_commits["beta1"], False, two_commits["A"]),
        (two_commits["beta2"], True, two_commits["B"]),
    ]
    assert [(a["action"], a["commit"]) for a in beta["actions"]] == [
        ("submit", two_commits["A"]),
        ("cancel", two_commits["B"]),
        ("submit", two_commits["B"]),
    ]

    alpha = history_json(state, "--job", two_commits["alpha"])
    (run,) = alpha["runs"]
    assert (run["commit"], run["author"], run["manifest"]) == (
        two_commits["A"],
        ada,
        "jobs/alpha.json",
    )
    assert run["removed"] is True and run["status"] == "FAILED"
    assert [(a["action"], a["author"]) for a in alpha["actions"]] == [
        ("submit", ada),
        ("cancel", bob),
    ]
    tags = batch.describe_jobs(jobs=[two_commits["alpha"]])["jobs"][0]["tags"]
    assert tags["batch-gitops/revision"] == two_commits["A"]
    # AWS tag values cannot hold "<>": the tag carries the same name and address without them.
    assert tags["batch-gitops/author"] == "Ada Author ada@example.com"
    assert tags["batch-gitops/manifest"] == "jobs/alpha.json"


def test_text_output_and_exit_codes(two_commits: dict[str, str], controller: Controller) -> None:
    """The text form names job, commit and author; nothing found exits 1 saying so; a
    malformed SHA is a usage error (exit 2) that says what to pass; a missing ledger says
    which file and which option."""
    state = controller.settings.state
    shown = history(state, "--job", two_commits["alpha"])
    assert shown.returncode == 0, shown.stderr
    assert two_commits["alpha"] in shown.stdout and "Ada Author" in shown.stdout
    assert two_commits["A"][:12] in shown.stdout and "cancel" in shown.stdout

    nothing = history(state, "--manifest", "jobs/never.json")
    assert nothing.returncode == 1
    assert "nothing in" in nothing.stderr and "manifest jobs/never.json" in nothing.stderr

    bad = history(state, "--commit", "xyz!")
    assert bad.returncode == 2 and "--commit" in bad.stderr and "hex digits" in bad.stderr

    if isinstance(state, Path):
        missing = history(state.parent / "nope.sqlite", "--commit", two_commits["A"])
        assert missing.returncode == 1
        assert "nope.sqlite" in missing.stderr and "--state" in missing.stderr
    else:
        missing = history("dynamodb://no-such-ledger", "--commit", two_commits["A"])
        assert missing.returncode == 1
        assert "dynamodb://no-such-ledger" in missing.stderr and "create-table" in missing.stderr
