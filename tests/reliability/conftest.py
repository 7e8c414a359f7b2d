"""Fixtures for the reliability tests: an auditor's view of AWS, and a terminal-summary
section where every test prints its numbers (kill points tried, faults injected, jobs
expected vs found) whatever ``-s`` says. (The fault proxy is the root ``proxy`` fixture;
``run_cli``, ``start_cli`` and ``controller_env`` live in tests/support/cli.py.)"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.conftest import GitRepo
from tests.support import aws
from tests.support.cli import controller_env, run_cli, start_cli
from tests.support.manifests import definition, job

__all__ = ["controller_env", "run_cli", "start_cli"]

NUMBERS: list[str] = []

DEFINITION = definition("worker")
QUEUES = ("test-queue", "cpu-job-queue")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if NUMBERS:
        terminalreporter.section("batch-gitops reliability numbers")
        for line in NUMBERS:
            terminalreporter.write_line(line)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Any:
    """``report("...")`` records a line for the terminal summary, prefixed by the test."""

    def add(line: str) -> None:
        NUMBERS.append(f"{request.node.name}: {line}")
        print(line)

    return add


def write_jobs(repo: GitRepo, count: int, *, prefix: str = "job") -> set[tuple[str, str]]:
    """``count`` job manifests over two queues on one managed definition; their keys."""
    repo.write("defs/worker.json", DEFINITION)
    keys = set()
    for n in range(count):
        queue = QUEUES[n % len(QUEUES)]
        name = f"{prefix}-{n:04d}"
        repo.write(f"jobs/{name}.json", job(name, queue, "worker"))
        keys.add((queue, name))
    return keys


def managed_jobs(batch: Any, queues: tuple[str, ...] = QUEUES) -> Counter[tuple[str, str]]:
    """How many jobs AWS holds per (queue, name) carrying our managed-by tag (both of this
    suite's queues unless told otherwise)."""
    return aws.managed_jobs(batch, queues)
