"""Shared fixtures: real git repositories in tmp_path, a real moto server over HTTP,
a real SQLite ledger (or, for ledger tests, each of its two stores: ``store_state``,
``ledger``, ``store_controller``). Fakes live only in tests/model (pure planner tests).

The parts behind them live in ``tests/support`` (one module per thing, see its
``__init__``); the names tests have always imported from here are re-exported.

Fixtures: ``repo`` (a :class:`GitRepo`), ``moto_server`` (session) and ``moto`` (a clean
moto Batch with the examples' queues, jobs finishing at once), ``batch`` (an auditor's
boto3 client), ``controller`` (a :class:`Controller` on ``repo``), ``proxy`` (a
:class:`FaultProxy` in front of moto) and ``cli_env`` (the environment of a
``batch-gitops`` process on the same moto, repository and ledger as ``controller``).

A test that skips fails (:mod:`tests.support.no_skips`): every test runs everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.demo import backend as demo_backend
from controller.state.ledger import Ledger
from controller.state.stores import open_ledger
from tests.support.aws import QUEUES, WriteCounter
from tests.support.cli import controller_env
from tests.support.controllers import Controller, make_controller, make_settings
from tests.support.fault_proxy import FaultProxy
from tests.support.gitrepo import GitRepo
from tests.support.no_skips import pytest_make_collect_report, pytest_runtest_makereport
from tests.support.paths import EXAMPLES, ROOT
from tests.support.stores import STORES, dynamodb_ledger_location

__all__ = [
    "EXAMPLES",
    "QUEUES",
    "ROOT",
    "Controller",
    "GitRepo",
    "WriteCounter",
    "dynamodb_ledger_location",
    "make_controller",
    "pytest_make_collect_report",
    "pytest_runtest_makereport",
]


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """A fresh git repository (branch main, author Ada) at tmp_path/repo."""
    return GitRepo(tmp_path / "repo")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[demo_backend.MotoBatch]:
    """One moto server on 127.0.0.1 for the whole run; AWS_* point boto3 at it."""
    server = demo_backend.start("instant")
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server: demo_backend.MotoBatch) -> demo_backend.MotoBatch:
    """A clean moto Batch with the examples' queues and instant jobs."""
    moto_server.reset()
    demo_backend.set_mode("instant")
    moto_server.create_queues(QUEUES)
    return moto_server


@pytest.fixture
def controller(moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path) -> Controller:
    """A controller on ``repo`` (branch main), its ledger at tmp_path/ledger.sqlite."""
    return make_controller(make_settings(repo, tmp_path))


@pytest.fixture
def batch(moto: demo_backend.MotoBatch) -> Any:
    """A plain boto3 Batch client on the moto server, to look at AWS as an auditor would."""
    return moto.client()


@pytest.fixture
def proxy(moto: demo_backend.MotoBatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of the moto server (set ``rule``/``hook``; no faults yet)."""
    fault_proxy = FaultProxy(moto.endpoint).start()
    yield fault_proxy
    fault_proxy.stop()


@pytest.fixture
def cli_env(moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path) -> dict[str, str]:
    """The environment of a ``batch-gitops`` process: moto, ``repo``, and the ledger and
    cache the ``controller`` fixture uses (tmp_path/ledger.sqlite, tmp_path/cache)."""
    return controller_env(moto.endpoint, repo, tmp_path / "ledger.sqlite")


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


# --- the ledger's two stores: tests of ledger behaviour run on both ---
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
    """The ``controller`` fixture, once on a SQLite ledger and once on a DynamoDB ledger
    (a test module runs on both by overriding ``controller`` with this)."""
    return make_controller(make_settings(repo, tmp_path, state=store_state))
