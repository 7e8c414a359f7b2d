"""Fixtures of the notify tests: the stand-in forge and a daemon reporting to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.service.daemon import Daemon
from controller.service.notify import Reporter
from controller.service.notify.config import load_config
from controller.service.notify.delivery import RetryPolicy
from controller.settings import Settings
from tests.conftest import Controller, GitRepo
from tests.support.forge_server import ForgeServer

# Quick retries: a test waits for seconds, never for production's minute-long pause.
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.05, pause=0.2, timeout=5.0)

DEFINITION = {
    "jobDefinitionName": "trainer",
    "type": "container",
    "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
}


def job(name: str, **extra: Any) -> dict[str, Any]:
    return {"jobName": name, "jobQueue": "test-queue", "jobDefinition": "trainer", **extra}


def commit_as(repo: GitRepo, who: str, message: str) -> str:
    repo.git("add", "-A")
    repo.git(
        "-c",
        f"user.name={who}",
        "-c",
        f"user.email={who.lower()}@example.com",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        message,
    )
    return repo.git("rev-parse", "HEAD")


@pytest.fixture
def forge() -> Iterator[ForgeServer]:
    server = ForgeServer()
    yield server
    server.stop()


def forge_settings(controller: Controller, forge: ForgeServer, **overrides: Any) -> Settings:
    """The controller's settings plus GitHub, GitLab and one webhook on the stand-in."""
    values: dict[str, Any] = {
        "github_token": forge.state.github_token,
        "github_api_url": f"{forge.url}/api/v3",  # as GitHub Enterprise serves it
        "github_repository": "data-team/batch-manifests",
        "gitlab_token": forge.state.gitlab_token,
        "gitlab_api_url": f"{forge.url}/api/v4",
        "gitlab_project": "data/batch-manifests",
        "notify_urls": f"{forge.url}/hooks/T000/B000/slack-secret-path",
        "status_target_url": "https://grafana.example.com/d/batch-gitops?var-commit={sha}",
        "interval": 3600.0,
        "listen": "127.0.0.1:0",
        **overrides,
    }
    return Settings(**{**controller.settings.model_dump(), **values})


DaemonFactory = Callable[..., Daemon]


@pytest.fixture
def make_daemon(controller: Controller, forge: ForgeServer) -> Iterator[DaemonFactory]:
    """Daemons on the controller's ledger whose reporter retries quickly; closed after."""
    made: list[Daemon] = []

    def build(settings: Settings | None = None, **overrides: Any) -> Daemon:
        settings = settings or forge_settings(controller, forge, **overrides)
        daemon = Daemon(settings, controller.api, controller.ledger)
        assert daemon.reporter is not None
        daemon.reporter.close(0)
        daemon.reporter = Reporter(
            load_config(settings), controller.ledger, retry=FAST_RETRY, forge_interval=0.0
        )
        made.append(daemon)
        return daemon

    yield build
    for daemon in made:
        if daemon.reporter is not None:
            daemon.reporter.close(1.0)


def settle(daemon: Daemon) -> None:
    """Wait until everything the daemon's reporter queued has been answered."""
    assert daemon.reporter is not None
    assert daemon.reporter.wait_idle(15.0), "deliveries still pending"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "github-token"
    path.write_text("ghp-from-file\n")
    return path
