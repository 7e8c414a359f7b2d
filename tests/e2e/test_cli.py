"""The batch-gitops command as users run it: separate processes, one ledger file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from controller.demo import backend as demo_backend
from tests.conftest import GitRepo

JOB = {"jobName": "nightly", "jobQueue": "test-queue", "jobDefinition": "trainer"}
DEFINITION = {
    "jobDefinitionName": "trainer",
    "type": "container",
    "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
}


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


@pytest.fixture
def env(moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_BATCH": moto.endpoint,
        "BATCH_GITOPS_REPO": str(repo.path),
        "BATCH_GITOPS_STATE": str(tmp_path / "l.db"),
        "BATCH_GITOPS_LOG_FORMAT": "json",
    }


def test_plan_reconcile_plan_across_processes(
    env: dict[str, str], repo: GitRepo, batch: Any
) -> None:
    """plan exits 2 with the documented JSON, reconcile applies, a new process's
    reconcile writes nothing and plan then exits 0."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/nightly.json", JOB)
    sha = repo.commit("nightly")
    planned = cli("plan", "--output", "json", env=env)
    assert planned.returncode == 2, planned.stderr
    body = json.loads(planned.stdout)
    assert body["revision"] == sha and body["errors"] == []
    assert [(a["action"], a["kind"], a["name"], a["manifest"]) for a in body["actions"]] == [
        ("register", "job-definition", "trainer", "defs/trainer.json"),
        ("submit", "job", "nightly", "jobs/nightly.json"),
    ]
    assert batch.list_jobs(jobQueue="test-queue")["jobSummaryList"] == []  # plan changed nothing

    applied = cli("reconcile", "--output", "json", env=env)
    assert applied.returncode == 0, applied.stderr
    assert [a["result"] for a in json.loads(applied.stdout)["actions"]] == ["ok", "ok"]
    again = cli("reconcile", "--output", "json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["actions"] == []
    assert len(batch.list_jobs(jobQueue="test-queue")["jobSummaryList"]) == 1
    assert cli("plan", env=env).returncode == 0

    status = json.loads(cli("status", "--output", "json", env=env).stdout)
    [job] = status["jobs"]
    assert (job["name"], job["status"], job["revision"]) == ("nightly", "SUCCEEDED", sha)
    assert job["author"] == "Ada Author <ada@example.com>"


def test_errors_exit_1_and_name_the_file(env: dict[str, str], repo: GitRepo) -> None:
    repo.write("jobs/bad.json", {**JOB, "jobQueu": "x"})
    repo.commit("typo")
    planned = cli("plan", env=env)
    assert planned.returncode == 1
    assert "jobs/bad.json: jobQueu: unknown field; did you mean 'jobQueue'?" in planned.stdout
    assert cli("reconcile", env=env).returncode == 1
    missing = cli("plan", "--repo", str(repo.path / "nope"), env=env)
    assert missing.returncode == 1 and "not a git repository" in missing.stdout


def test_daemon_applies_new_commits_and_stops_on_sigterm(
    env: dict[str, str], repo: GitRepo, batch: Any
) -> None:
    repo.write("defs/trainer.json", DEFINITION)
    repo.commit("definitions only")
    process = subprocess.Popen(
        [sys.executable, "-m", "controller", "run", "--interval", "1s", "--listen", "127.0.0.1:0"],
        env=env,
        text=True,
        stderr=subprocess.PIPE,
    )
    try:
        port = None
        deadline = time.monotonic() + 20
        assert process.stderr is not None
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if '"daemon_started"' in line:
                port = json.loads(line)["listen"].rsplit(":", 1)[1]
        assert port, "daemon did not start"
        base = f"http://127.0.0.1:{port}"
        assert json.load(urllib.request.urlopen(f"{base}/healthz", timeout=5))["alive"]

        repo.write("jobs/nightly.json", JOB)
        repo.commit("add nightly")
        deadline = time.monotonic() + 20
        while not batch.list_jobs(jobQueue="test-queue")["jobSummaryList"]:
            assert time.monotonic() < deadline, "daemon never submitted the new job"
            time.sleep(0.2)
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


def test_missing_region_is_a_clear_error(env: dict[str, str]) -> None:
    """No region anywhere: one readable line naming the variable to set, no traceback."""
    bare = {
        k: v for k, v in env.items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL_BATCH"
    }
    bare["AWS_CONFIG_FILE"] = "/nonexistent"
    result = cli("plan", env=bare)
    assert result.returncode == 1
    assert "no AWS region configured: set AWS_DEFAULT_REGION" in result.stderr
    assert "Traceback" not in result.stderr
