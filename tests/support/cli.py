"""``batch-gitops`` as users run it: a separate ``python -m controller`` process.

:func:`controller_env` is the environment such a process needs to reach moto (or a
proxy in front of it) and find its repository, ledger and cache; :func:`run_cli` runs
one command to completion, :func:`start_cli` starts one (a daemon, a watcher, a
process a test kills)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.gitrepo import GitRepo

COMMAND = [sys.executable, "-m", "controller"]


def controller_env(
    endpoint: str, repo: GitRepo | str | None, state: Path, **extra: str
) -> dict[str, str]:
    """This process's environment plus: Batch at ``endpoint``, ``repo`` as the source, the
    ledger at ``state`` and the git cache beside it, JSON logs, no client-side rate limit
    to wait for; ``extra`` adds or overrides ``BATCH_GITOPS_*`` (or any) variables."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_BATCH": endpoint,
        "BATCH_GITOPS_STATE": str(state),
        "BATCH_GITOPS_WORKDIR": str(state.parent / "cache"),
        "BATCH_GITOPS_LOG_FORMAT": "json",
        "BATCH_GITOPS_RATE_LIMIT": "1000",
    }
    if repo is not None:
        env["BATCH_GITOPS_REPO"] = str(repo.path) if isinstance(repo, GitRepo) else repo
    return {**env, **extra}


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    **options: Any,
) -> subprocess.CompletedProcess[str]:
    """``batch-gitops ARGS`` to completion: exit code, stdout and stderr as text."""
    return subprocess.run(
        [*COMMAND, *args],
        env=None if env is None else dict(env),
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=timeout,
        **options,
    )


def start_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    **options: Any,
) -> subprocess.Popen[str]:
    """``batch-gitops ARGS`` started in the background (text pipes unless told otherwise)."""
    return subprocess.Popen(
        [*COMMAND, *args],
        env=None if env is None else dict(env),
        text=True,
        stdout=stdout,
        stderr=stderr,
        **options,
    )


def stop(
    process: subprocess.Popen[Any], how: signal.Signals = signal.SIGTERM, timeout: float = 10
) -> None:
    """Stop a started process with ``how``, killing it if it is still there after
    ``timeout`` seconds (a test never leaves a process behind, nor waits forever)."""
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
