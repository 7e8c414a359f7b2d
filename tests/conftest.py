"""Shared fixtures: real git repositories in tmp_path, a real moto server over HTTP,
a real SQLite ledger. Fakes live only in tests/plan (pure planner tests)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controller.aws.batch import WRITE_OPERATIONS, Boto3Batch
from controller.demo import backend as demo_backend
from controller.engine.reconcile import PassResult, run_pass
from controller.settings import Settings
from controller.source.repository import make_source
from controller.state.sqlite import SqliteLedger

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "manifests"


class GitRepo:
    """A real git repository with a tiny API for tests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Ada Author")
        self.git("config", "user.email", "ada@example.com")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.path, check=True, text=True, capture_output=True
        ).stdout.strip()

    def write(self, relpath: str, content: Any) -> None:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if not isinstance(content, str):
            content = json.dumps(content, indent=2)
        target.write_text(content)

    def remove(self, relpath: str) -> None:
        self.git("rm", "-q", "-r", relpath)

    def copy_examples(self, source: Path = EXAMPLES) -> None:
        for file in source.rglob("*"):
            if file.is_file():
                self.write(file.relative_to(source).as_posix(), file.read_text())

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[demo_backend.MotoBatch]:
    server = demo_backend.start("instant")
    yield server
    server.stop()


QUEUES = [
    "ml-training-queue",
    "cpu-job-queue",
    "gpu-job-queue",
    "compute-queue",
    "finance-team-queue",
    "analytics-queue",
    "test-queue",
]


@pytest.fixture
def moto(moto_server: demo_backend.MotoBatch) -> demo_backend.MotoBatch:
    """A clean moto Batch with the examples' queues and instant jobs."""
    moto_server.reset()
    demo_backend.set_mode("instant")
    moto_server.create_queues(QUEUES)
    return moto_server


@dataclass
class Controller:
    """One controller instance (settings + adapter + ledger) against moto."""

    settings: Settings
    api: Boto3Batch
    ledger: SqliteLedger
    passes: list[PassResult] = field(default_factory=list)

    def reconcile(self, **kwargs: Any) -> PassResult:
        result = run_pass(
            self.settings, make_source(self.settings), self.api, self.ledger, **kwargs
        )
        self.passes.append(result)
        return result

    def restart(self) -> Controller:
        """A fresh controller on the same ledger file (as after a process restart)."""
        self.ledger.close()
        return make_controller(self.settings)


def make_controller(settings: Settings) -> Controller:
    api = Boto3Batch(rate_limit=1000, max_attempts=3)
    return Controller(settings, api, SqliteLedger(settings.state))


@pytest.fixture
def controller(moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path) -> Controller:
    settings = Settings(
        repo=str(repo.path),
        branch="main",
        state=tmp_path / "ledger.sqlite",
        workdir=tmp_path / "cache",
    )
    return make_controller(settings)


@pytest.fixture
def batch(moto: demo_backend.MotoBatch) -> Any:
    """A plain boto3 Batch client on the moto server, to look at AWS as an auditor would."""
    return moto.client()


class WriteCounter:
    """Counts the Batch API calls a controller makes, by operation, through botocore's
    ``before-call`` event: once per call, however many HTTP attempts botocore's retry
    mode needs for it (a read retried after a dropped connection is still one read).
    SubmitJob and RegisterJobDefinition are never retried by botocore (see batch.py),
    so for them a call is a request that reached, or may have reached, AWS."""

    WRITES = WRITE_OPERATIONS

    def __init__(self, api: Boto3Batch) -> None:
        self.calls: list[str] = []
        for client in (api.client, api.submit_client):
            client.meta.events.register("before-call.batch.*", self._count)

    def _count(self, event_name: str = "", **_: Any) -> None:
        self.calls.append(event_name.rsplit(".", 1)[-1])

    @property
    def writes(self) -> list[str]:
        return [c for c in self.calls if c in self.WRITES]

    @property
    def reads(self) -> list[str]:
        return [c for c in self.calls if c not in self.WRITES]


@pytest.fixture(autouse=True, scope="session")
def _xdg_dirs_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default ledger and git cache ($XDG_STATE_HOME, $XDG_CACHE_HOME) of every test,
    in-process and in the CLI processes it starts, live in a temp dir, never in $HOME."""
    import os

    saved = {name: os.environ.get(name) for name in ("XDG_STATE_HOME", "XDG_CACHE_HOME")}
    base = tmp_path_factory.mktemp("xdg")
    os.environ["XDG_STATE_HOME"] = str(base / "state")
    os.environ["XDG_CACHE_HOME"] = str(base / "cache")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _structlog_config_restored() -> Iterator[None]:
    """A command run in-process (click's CliRunner) configures logging for a one-shot
    command (warnings only); the next test gets the configuration it started with."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
