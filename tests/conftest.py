"""Shared fixtures: real git repositories in tmp_path, a real moto server over HTTP
(Batch and DynamoDB), a real SQLite ledger or a DynamoDB ledger on that server. Fakes
live only in tests/plan (pure planner tests)."""

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
from controller.state.dynamodb import DynamoLedger
from controller.state.ledger import Ledger
from controller.state.stores import open_ledger

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
    ledger: Ledger
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
    return Controller(settings, api, open_ledger(settings.state, settings))


@pytest.fixture
def controller(moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path) -> Controller:
    settings = Settings(
        repo=str(repo.path),
        branch="main",
        state=tmp_path / "ledger.sqlite",
        workdir=tmp_path / "cache",
    )
    return make_controller(settings)


# --- the ledger's two stores: tests of ledger behaviour run on both ---
STORES = ["sqlite", "dynamodb"]
LEDGER_TABLE = "batch-gitops-ledger"


def dynamodb_ledger_location(
    moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch, table: str = LEDGER_TABLE
) -> str:
    """A new, empty ledger table on the moto server (DynamoDB over HTTP); its --state."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint)
    DynamoLedger(table).create_table(point_in_time_recovery=False)
    return f"dynamodb://{table}"


@pytest.fixture(params=STORES)
def store_state(
    request: pytest.FixtureRequest,
    moto: demo_backend.MotoBatch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path | str:
    """The --state of a new, empty ledger: a SQLite file, then a DynamoDB table."""
    if request.param == "sqlite":
        return tmp_path / "ledger.sqlite"
    return dynamodb_ledger_location(moto, monkeypatch)


@pytest.fixture
def ledger(store_state: Path | str) -> Iterator[Ledger]:
    """An empty ledger of each store (the test runs once per store)."""
    opened = open_ledger(store_state)
    yield opened
    opened.close()


@pytest.fixture
def store_controller(
    moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path, store_state: Path | str
) -> Controller:
    """:func:`controller`, once on a SQLite ledger and once on a DynamoDB ledger."""
    settings = Settings(
        repo=str(repo.path), branch="main", state=store_state, workdir=tmp_path / "cache"
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
