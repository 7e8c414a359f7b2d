"""A controller under test, built as the CLI builds one but with test-sized settings.

* :func:`make_settings` — ``Settings`` for a repository (a :class:`GitRepo` or a URL),
  its ledger and git cache in a directory of the test's own (``tmp_path``);
* :func:`make_api` — the Batch adapter with a rate limit high enough never to slow a test;
* :class:`Controller` / :func:`make_controller` — settings + adapter + ledger, one
  ``reconcile()`` per pass (the ``controller`` fixture);
* :func:`make_daemon` — the same parts inside a :class:`~controller.service.daemon.Daemon`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.aws.batch import Boto3Batch
from controller.engine.reconcile import PassResult, run_pass
from controller.service.daemon import Daemon
from controller.settings import Settings
from controller.source.repository import make_source
from controller.state.ledger import Ledger
from controller.state.stores import open_ledger
from tests.support.gitrepo import GitRepo


def make_settings(repo: GitRepo | str, directory: Path, **overrides: Any) -> Settings:
    """Settings on branch ``main`` of ``repo`` (a test repository or a URL), with the ledger
    at ``directory/ledger.sqlite`` and the git cache at ``directory/cache``; ``overrides``
    are any other settings (environment variables still apply, as for the CLI)."""
    values: dict[str, Any] = {
        "repo": str(repo.path) if isinstance(repo, GitRepo) else repo,
        "branch": "main",
        "state": directory / "ledger.sqlite",
        "workdir": directory / "cache",
        **overrides,
    }
    return Settings(**values)


def make_api(rate_limit: float = 1000, max_attempts: int = 3, **options: Any) -> Boto3Batch:
    """The Batch adapter on the endpoint in ``AWS_ENDPOINT_URL_BATCH`` (moto, or a proxy)."""
    return Boto3Batch(rate_limit=rate_limit, max_attempts=max_attempts, **options)


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


def make_controller(settings: Settings, api: Boto3Batch | None = None) -> Controller:
    """A controller on ``settings``' ledger (a file or a DynamoDB table), with ``api`` or
    :func:`make_api`'s adapter."""
    return Controller(settings, api or make_api(), open_ledger(settings.state, settings))


def make_daemon(settings: Settings, api: Boto3Batch | None = None) -> Daemon:
    """A daemon (scheduler, health, HTTP server when started) on ``settings``' ledger."""
    return Daemon(settings, api or make_api(), open_ledger(settings.state, settings))
