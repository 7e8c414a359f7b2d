"""The ``batch-gitops`` command as a new user runs it (issue 15): separate processes, a
default ledger location of its own per test (``$XDG_STATE_HOME`` in tmp_path), moto as
AWS Batch."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.demo import backend as demo_backend
from tests.conftest import GitRepo

DEFINITION = {
    "jobDefinitionName": "trainer",
    "type": "container",
    "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
}


def job(name: str, queue: str = "test-queue") -> dict[str, str]:
    return {"jobName": name, "jobQueue": queue, "jobDefinition": "trainer"}


@dataclass
class User:
    """A shell: an environment and a working directory, running the real CLI."""

    env: dict[str, str]
    home: Path  # $XDG_STATE_HOME: where default ledgers go

    def run(
        self, *args: str, cwd: Path | None = None, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "controller", *args],
            env={**self.env, **env},
            cwd=cwd,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def default_ledger(self, controller_id: str = "batch-gitops") -> Path:
        return self.home / "batch-gitops" / controller_id / "ledger.sqlite"


@pytest.fixture
def user(moto: demo_backend.MotoBatch, tmp_path: Path) -> User:
    """A user whose AWS is moto and whose default ledger lives under tmp_path; no
    BATCH_GITOPS_* variable set, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_GITOPS_")}
    home = tmp_path / "state"
    env.update(
        XDG_STATE_HOME=str(home),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        AWS_ENDPOINT_URL_BATCH=moto.endpoint,
    )
    return User(env, home)


@pytest.fixture
def applied(repo: GitRepo, user: User) -> GitRepo:
    """A repository with a definition and two jobs, reconciled once with the defaults."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/train-model-42.json", job("train-model-42"))
    repo.write("jobs/train-model-experiment-42.json", job("train-model-experiment-42"))
    repo.commit("two jobs")
    result = user.run("reconcile", "--repo", str(repo.path))
    assert result.returncode == 0, result.stdout + result.stderr
    return repo
