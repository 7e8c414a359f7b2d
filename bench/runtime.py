"""One controller as the benchmark runs it: settings, adapter, ledger, logs to a file.

The controller logs as in production (JSON, INFO, one line per action), but to
a file: a terminal scrolling 10,000 lines would measure the terminal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import structlog

from controller.aws.batch import Boto3Batch
from controller.engine.reconcile import PassResult, run_pass
from controller.logs import configure
from controller.settings import Settings
from controller.source.manifest_cache import ManifestCache
from controller.source.repository import GitSource, make_source
from controller.state.sqlite import SqliteLedger

# Fast enough never to be the limit on moto; the default (20/s) is reported separately.
UNLIMITED_RATE = 100_000.0
# The default refuses revisions with more files (a safety valve): the benchmark is bigger.
MAX_MANIFESTS = 1_000_000

_log_file: IO[str] | None = None


def log_to(path: Path) -> dict[str, Any]:
    """Production log rendering (JSON), written to ``path`` instead of stderr.

    Returns the structlog configuration it replaced (for :func:`restore_logs`).
    """
    global _log_file
    previous = structlog.get_config()
    if _log_file is not None:
        _log_file.close()
    _log_file = path.open("a", encoding="utf-8")
    configure("json", logging.INFO, stream=_log_file)
    return previous


def restore_logs(previous: dict[str, Any]) -> None:
    global _log_file
    structlog.configure(**previous)
    if _log_file is not None:
        _log_file.close()
        _log_file = None


def settings(
    repo: str, state: Path, *, rate_limit: float = UNLIMITED_RATE, **extra: Any
) -> Settings:
    return Settings(
        repo=repo,
        branch="main",
        state=state,
        workdir=state.parent / "cache",
        rate_limit=rate_limit,
        max_manifests=MAX_MANIFESTS,
        **extra,
    )


def environment(settings: Settings) -> dict[str, str]:
    """The same settings as ``BATCH_GITOPS_*`` variables, for a controller subprocess."""
    return {
        "BATCH_GITOPS_REPO": settings.repo,
        "BATCH_GITOPS_BRANCH": settings.branch,
        "BATCH_GITOPS_STATE": str(settings.state),
        "BATCH_GITOPS_WORKDIR": str(settings.workdir),
        "BATCH_GITOPS_RATE_LIMIT": str(settings.rate_limit),
        "BATCH_GITOPS_MAX_MANIFESTS": str(settings.max_manifests),
        "BATCH_GITOPS_LOG_FORMAT": "json",
        "BATCH_GITOPS_LOG_LEVEL": "info",  # one-shot commands log warnings only by default
    }


def adapter(settings: Settings) -> Boto3Batch:
    return Boto3Batch.from_settings(settings)  # as open_runtime builds it for the CLI


@dataclass
class Controller:
    """A long-lived controller (like the daemon): one source, one cache, one ledger."""

    settings: Settings
    api: Boto3Batch
    ledger: SqliteLedger
    source: GitSource
    cache: ManifestCache

    def run(self) -> PassResult:
        return run_pass(self.settings, self.source, self.api, self.ledger, cache=self.cache)

    def restarted(self) -> Controller:
        """The same controller after a process restart: empty caches, same ledger file."""
        return open_controller(self.settings, self.api)

    def close(self) -> None:
        self.ledger.close()


def open_controller(settings: Settings, api: Boto3Batch | None = None) -> Controller:
    return Controller(
        settings=settings,
        api=api or adapter(settings),
        ledger=SqliteLedger(settings.state),
        source=make_source(settings),
        cache=ManifestCache(),
    )
