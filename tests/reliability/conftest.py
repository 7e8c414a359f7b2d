"""Fixtures for the reliability tests: the fault proxy in front of moto, an auditor's
view of AWS, and a terminal-summary section where every test prints its numbers
(kill points tried, faults injected, jobs expected vs found) whatever ``-s`` says."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.demo import backend as demo_backend
from controller.model.tags import MANAGED_BY_TAG
from tests.conftest import GitRepo
from tests.support.fault_proxy import FaultProxy

NUMBERS: list[str] = []

DEFINITION = {
    "jobDefinitionName": "worker",
    "type": "container",
    "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
}
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


@pytest.fixture
def proxy(moto: demo_backend.MotoBatch) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(moto.endpoint).start()
    yield fault_proxy
    fault_proxy.stop()


def write_jobs(repo: GitRepo, count: int, *, prefix: str = "job") -> set[tuple[str, str]]:
    """``count`` job manifests over two queues on one managed definition; their keys."""
    repo.write("defs/worker.json", DEFINITION)
    keys = set()
    for n in range(count):
        queue = QUEUES[n % len(QUEUES)]
        name = f"{prefix}-{n:04d}"
        repo.write(
            f"jobs/{name}.json", {"jobName": name, "jobQueue": queue, "jobDefinition": "worker"}
        )
        keys.add((queue, name))
    return keys


def managed_jobs(batch: Any, queues: tuple[str, ...] = QUEUES) -> Counter[tuple[str, str]]:
    """How many jobs AWS holds per (queue, name) carrying our managed-by tag.

    moto's ListJobs without ``jobStatus`` returns every status in one page (see
    MOTO-NOTES), so one call per queue sees every job ever submitted there.
    """
    found: Counter[tuple[str, str]] = Counter()
    for queue in queues:
        ids = [
            s["jobId"]
            for s in batch.list_jobs(jobQueue=queue)["jobSummaryList"]
            if ":" not in s["jobId"]  # array children carry no tags
        ]
        for start in range(0, len(ids), 100):
            for job in batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]:
                if (job.get("tags") or {}).get(MANAGED_BY_TAG) == "batch-gitops":
                    found[(queue, job["jobName"])] += 1
    return found


def controller_env(endpoint: str, repo: GitRepo, state: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_BATCH": endpoint,
        "BATCH_GITOPS_REPO": str(repo.path),
        "BATCH_GITOPS_STATE": str(state),
        "BATCH_GITOPS_WORKDIR": str(state.parent / "cache"),
        "BATCH_GITOPS_LOG_FORMAT": "json",
        "BATCH_GITOPS_LOG_LEVEL": "info",  # one-shot commands log warnings only by default
        "BATCH_GITOPS_RATE_LIMIT": "1000",
        **extra,
    }


def start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "controller", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
