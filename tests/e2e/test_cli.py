"""The batch-gitops command as users run it: separate processes, one ledger file."""

from __future__ import annotations

import json
import signal
import urllib.request
from typing import Any

from tests.conftest import GitRepo
from tests.support.cli import run_cli as cli
from tests.support.cli import start_cli
from tests.support.manifests import definition, job
from tests.support.waiting import wait_until

JOB = job("nightly")
DEFINITION = definition("trainer")


def test_plan_reconcile_plan_across_processes(
    cli_env: dict[str, str], repo: GitRepo, batch: Any
) -> None:
    """plan exits 2 with the documented JSON, reconcile applies, a new process's
    reconcile writes nothing and plan then exits 0."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/nightly.json", JOB)
    sha = repo.commit("nightly")
    planned = cli("plan", "--output", "json", env=cli_env)
    assert planned.returncode == 2, planned.stderr
    body = json.loads(planned.stdout)
    assert body["revision"] == sha and body["errors"] == []
    assert [(a["action"], a["kind"], a["name"], a["manifest"]) for a in body["actions"]] == [
        ("register", "job-definition", "trainer", "defs/trainer.json"),
        ("submit", "job", "nightly", "jobs/nightly.json"),
    ]
    assert batch.list_jobs(jobQueue="test-queue")["jobSummaryList"] == []  # plan changed nothing

    applied = cli("reconcile", "--output", "json", env=cli_env)
    assert applied.returncode == 0, applied.stderr
    assert [a["result"] for a in json.loads(applied.stdout)["actions"]] == ["ok", "ok"]
    again = cli("reconcile", "--output", "json", env=cli_env)
    assert again.returncode == 0 and json.loads(again.stdout)["actions"] == []
    assert len(batch.list_jobs(jobQueue="test-queue")["jobSummaryList"]) == 1
    assert cli("plan", env=cli_env).returncode == 0

    status = json.loads(cli("status", "--output", "json", env=cli_env).stdout)
    [job] = status["jobs"]
    assert (job["name"], job["status"], job["revision"]) == ("nightly", "SUCCEEDED", sha)
    assert job["author"] == "Ada Author <ada@example.com>"


def test_errors_exit_1_and_name_the_file(cli_env: dict[str, str], repo: GitRepo) -> None:
    """A typo makes plan and reconcile exit 1 with `file: field: message` and a hint; a
    --repo that is not a git repository exits 1 saying so."""
    repo.write("jobs/bad.json", {**JOB, "jobQueu": "x"})
    repo.commit("typo")
    planned = cli("plan", env=cli_env)
    assert planned.returncode == 1
    assert "jobs/bad.json: jobQueu: unknown field; did you mean 'jobQueue'?" in planned.stdout
    assert cli("reconcile", env=cli_env).returncode == 1
    missing = cli("plan", "--repo", str(repo.path / "nope"), env=cli_env)
    assert missing.returncode == 1 and "not a git repository" in missing.stdout


def test_daemon_applies_new_commits_and_stops_on_sigterm(
    cli_env: dict[str, str], repo: GitRepo, batch: Any
) -> None:
    """`run` serves /healthz at once, submits a job committed while it runs (within a
    few 1 s intervals), is then ready with the submit counted in /metrics, and exits 0
    on SIGTERM."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.commit("definitions only")
    process = start_cli(
        "run", "--interval", "1s", "--listen", "127.0.0.1:0", env=cli_env, stdout=None
    )
    try:
        stderr = process.stderr
        assert stderr is not None

        def listening_port() -> str:
            line = stderr.readline()
            assert line, "the daemon exited before it started"
            return (
                json.loads(line)["listen"].rsplit(":", 1)[1] if '"daemon_started"' in line else ""
            )

        port = wait_until("the daemon to start", listening_port, 20, 0)
        base = f"http://127.0.0.1:{port}"
        assert json.load(urllib.request.urlopen(f"{base}/healthz", timeout=5))["alive"]

        repo.write("jobs/nightly.json", JOB)
        repo.commit("add nightly")
        wait_until(
            "the daemon to submit the new job",
            lambda: batch.list_jobs(jobQueue="test-queue")["jobSummaryList"],
            20,
            0.2,
        )
        ready = json.load(urllib.request.urlopen(f"{base}/readyz", timeout=5))
        assert ready["ready"] is True
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert (
            'batch_gitops_actions_total{action="submit",queue="test-queue",result="ok"} 1.0'
            in metrics
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    assert code == 0


def test_missing_region_is_a_clear_error(cli_env: dict[str, str]) -> None:
    """No region anywhere: one readable line naming the variable to set, no traceback."""
    bare = {
        k: v
        for k, v in cli_env.items()
        if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL_BATCH"
    }
    bare["AWS_CONFIG_FILE"] = "/nonexistent"
    result = cli("plan", env=bare)
    assert result.returncode == 1
    assert "no AWS region configured: set AWS_DEFAULT_REGION" in result.stderr
    assert "Traceback" not in result.stderr
