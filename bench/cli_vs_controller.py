"""N new job manifests: ``aws batch submit-job --cli-input-json`` once per file (what
teams do today) against one ``batch-gitops reconcile`` process. Process start is
included on both sides: each is timed from fork to exit.

The controller runs twice: with its rate limit raised above what moto can serve,
and with the default ``BATCH_GITOPS_RATE_LIMIT`` (20 calls/s, under AWS's 50
SubmitJob/s quota) — the second is bounded by that limit on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import corpus, runtime
from bench.endpoint import MotoEndpoint
from controller.settings import Settings

PREFIX = "cli"
STEP_TIMEOUT = 600.0


@dataclass
class CliVsController:
    jobs: int
    cli_seconds: float
    controller_seconds: float
    controller_default_limit_seconds: float | None
    default_rate_limit: float

    @property
    def ratio(self) -> float:
        return self.cli_seconds / self.controller_seconds

    @property
    def ratio_default_limit(self) -> float | None:
        if self.controller_default_limit_seconds is None:
            return None
        return self.cli_seconds / self.controller_default_limit_seconds


def aws_cli() -> str:
    """The ``aws`` executable next to this interpreter; installed into the venv if missing
    (``pip install -e '.[bench]'`` does the same ahead of time)."""
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return str(beside)
    print("bench: installing awscli into this environment (the 'bench' extra)", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "awscli"], check=True, timeout=STEP_TIMEOUT
    )
    if not beside.exists():
        raise RuntimeError(f"awscli installed, but {beside} is missing")
    return str(beside)


def batch_gitops() -> list[str]:
    script = Path(sys.executable).parent / "batch-gitops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "controller"]


def run_cli(moto: MotoEndpoint, repo: Path, files: list[str]) -> float:
    aws = aws_cli()
    env = {**os.environ, **moto.environment()}
    started = time.perf_counter()
    for relpath in files:
        subprocess.run(
            [aws, "batch", "submit-job", "--cli-input-json", f"file://{repo / relpath}"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=STEP_TIMEOUT,
        )
    return time.perf_counter() - started


def run_controller(moto: MotoEndpoint, settings: Settings, log: Path) -> float:
    env = {**os.environ, **moto.environment(), **runtime.environment(settings)}
    with log.open("a") as stderr:
        started = time.perf_counter()
        subprocess.run(
            [*batch_gitops(), "reconcile"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            timeout=STEP_TIMEOUT,
        )
        return time.perf_counter() - started


def submitted_jobs(moto: MotoEndpoint) -> int:
    return len(moto.client().list_jobs(jobQueue=corpus.QUEUE)["jobSummaryList"])


def measure(
    moto: MotoEndpoint, workdir: Path, jobs: int, *, default_limit: bool = True
) -> CliVsController:
    repo = corpus.init_repo(workdir / "repo")
    files = corpus.write_jobs(repo, range(jobs), PREFIX)
    corpus.commit(repo, f"{jobs} jobs")
    default_rate = float(Settings.model_fields["rate_limit"].default)

    moto.fresh()
    cli_seconds = run_cli(moto, repo, files)
    _expect(moto, jobs, "aws cli")

    moto.fresh()
    fast = runtime.settings(str(repo), workdir / "fast" / "ledger.sqlite")
    controller_seconds = run_controller(moto, fast, workdir / "controller.log")
    _expect(moto, jobs, "batch-gitops reconcile")

    limited_seconds = None
    if default_limit:
        moto.fresh()
        limited = runtime.settings(
            str(repo), workdir / "limited" / "ledger.sqlite", rate_limit=default_rate
        )
        limited_seconds = run_controller(moto, limited, workdir / "controller.log")
        _expect(moto, jobs, "batch-gitops reconcile (default rate limit)")
    return CliVsController(jobs, cli_seconds, controller_seconds, limited_seconds, default_rate)


def _expect(moto: MotoEndpoint, jobs: int, who: str) -> None:
    found = submitted_jobs(moto)
    if found != jobs:
        raise RuntimeError(f"{who} left {found} jobs in moto, expected {jobs}")
