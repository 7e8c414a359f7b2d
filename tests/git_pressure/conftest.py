"""Fixtures for git-under-pressure tests: a bare remote, a git daemon, a daemon-shaped
controller whose /readyz and /metrics are served over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.demo import backend as demo_backend
from controller.engine.reconcile import PassResult
from controller.service.daemon import Daemon
from controller.service.server import make_app, serve
from tests.conftest import GitRepo, WriteCounter
from tests.git_pressure.servers import BareRemote, GitDaemon
from tests.support.aws import jobs_by_name
from tests.support.controllers import make_api, make_daemon, make_settings
from tests.support.manifests import QUEUE, definition, job

# job(name, **extra) and jobs_by_name(batch) are the shared ones (tests/support).
__all__ = ["QUEUE", "job", "jobs_by_name"]

DEFINITION = definition("trainer")


@pytest.fixture
def remote(repo: GitRepo, tmp_path: Path) -> BareRemote:
    return BareRemote(tmp_path / "served", repo)


@pytest.fixture
def git_daemon(remote: BareRemote) -> Iterator[GitDaemon]:
    server = GitDaemon(remote.base)
    server.start()
    yield server
    server.stop()


@dataclass
class Watched:
    """A :class:`Daemon` (its pass, health and source) on one URL, served on 127.0.0.1."""

    daemon: Daemon
    url: str
    counter: WriteCounter

    def run(self) -> PassResult:
        return self.daemon.run_once()

    def readyz(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def writes(self) -> list[str]:
        """Write calls since the last look, then forget them."""
        writes = self.counter.writes
        self.counter.calls.clear()
        return writes


@pytest.fixture
def watch(moto: demo_backend.MotoBatch, tmp_path: Path) -> Iterator[Any]:
    """``watch(url, fetch_timeout=...)`` -> :class:`Watched`."""
    made: list[Any] = []

    def make(url: str, fetch_timeout: float = 10.0) -> Watched:
        settings = make_settings(url, tmp_path, fetch_timeout=fetch_timeout, ready_after=3600)
        api = make_api()
        daemon = make_daemon(settings, api)
        server = serve("127.0.0.1:0", make_app(daemon.health))
        made.append((server, daemon))
        return Watched(daemon, f"http://127.0.0.1:{server.server_port}", WriteCounter(api))

    yield make
    for server, daemon in made:
        server.shutdown()
        daemon.ledger.close()
