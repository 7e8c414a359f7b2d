"""Exactly once across crashes: the real ``batch-gitops reconcile`` process is
SIGKILLed by the fault proxy at many points of a 200-job pass, restarted, and in
the end AWS holds every managed job exactly once.

The proxy picks the moment without any hook in the product: before a SubmitJob
reaches AWS, after AWS processed it but before the reply (so the job exists and
the ledger does not know its ID), right after the reply (racing the ledger
write), in the middle of a concurrent batch (8 submits in flight), while open
intents are being settled, and right after a definition was registered.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controller.demo import backend as demo_backend
from tests.conftest import GitRepo
from tests.reliability.conftest import (
    controller_env,
    managed_jobs,
    run_cli,
    start_cli,
    write_jobs,
)
from tests.support.fault_proxy import Fault, FaultProxy, Rule

JOBS = 200
SUBMIT_FAULTS: tuple[Fault, ...] = ("kill-before", "kill-after", "kill-after-reply")


def kill_points(seed: int = 3) -> list[tuple[str, int, Fault]]:
    """(operation, nth request of it in that run, fault): spread over the whole pass."""
    rng = random.Random(seed)
    points: list[tuple[str, int, Fault]] = [
        ("RegisterJobDefinition", 0, "kill-after"),  # definition exists, ledger does not know
        ("SubmitJob", 0, "kill-before"),  # first submit never reaches AWS
    ]
    for n in range(15):
        points.append(("SubmitJob", rng.randrange(2, 14), SUBMIT_FAULTS[n % 3]))
        if n % 4 == 1:
            # Next run dies while settling the intents this kill left open.
            points.append(("DescribeJobs", 0, "kill-before"))
    return points


def kill_at(operation: str, nth: int, fault: Fault) -> Rule:
    return lambda op, index: fault if (op == operation and index == nth) else None


@pytest.mark.slow
def test_sigkill_at_many_points_leaves_every_job_exactly_once(
    moto: demo_backend.MotoBatch,
    proxy: FaultProxy,
    repo: GitRepo,
    tmp_path: Path,
    batch: Any,
    report: Any,
) -> None:
    """Each kill point kills a real controller process; after restarts AWS holds
    exactly one managed job per manifest (200), one definition revision, and a
    final pass submits nothing; the logs show intents both adopted and resubmitted, and
    the ledger file passes SQLite's integrity check after every kill."""
    expected = write_jobs(repo, JOBS)
    repo.commit("200 jobs")
    # moto lists a job as soon as SubmitJob returns, so no settle grace is needed here
    # (restarts come within a second); the grace has its own test in test_lost_replies.
    env = controller_env(
        proxy.endpoint, repo, tmp_path / "ledger.sqlite", BATCH_GITOPS_SETTLE_GRACE="0"
    )

    tried: list[str] = []
    logs: list[str] = []
    for operation, nth, fault in kill_points():
        proxy.clear()

        proxy.rule = kill_at(operation, nth, fault)
        process = start_cli("reconcile", "--output", "json", env=env)
        proxy.kill_pid = process.pid
        stdout, stderr = process.communicate(timeout=120)
        logs.append(stderr)
        proxy.rule = None
        killed = process.returncode == -9
        # The ledger survives the kill mid-write: the file passes SQLite's full check.
        with sqlite3.connect(env["BATCH_GITOPS_STATE"]) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        outcome = "killed"
        if not killed:
            # The pass ended before reaching this point (nothing left to do there).
            assert process.returncode in (0, 1), stderr[-2000:]
            body = json.loads(stdout)
            outcome = f"exit {process.returncode} {body['result']} {body['message']}"
        tried.append(f"{operation}#{nth}:{fault}:{outcome}")
    kills = sum(1 for t in tried if t.endswith(":killed"))

    finals = [run_cli("reconcile", "--output", "json", env=env) for _ in range(2)]
    logs.extend(f.stderr for f in finals)
    adopted = sum(log.count('"intent_adopted"') for log in logs)
    lost = sum(log.count('"intent_lost"') for log in logs)
    assert finals[-1].returncode == 0, finals[-1].stdout[-2000:] + finals[-1].stderr[-2000:]
    last = json.loads(finals[-1].stdout)
    assert last["actions"] == [], "a converged controller must not act again"

    found = managed_jobs(batch)
    duplicates = {key: n for key, n in found.items() if n > 1}
    revisions = batch.describe_job_definitions(jobDefinitionName="worker", status="ACTIVE")
    report(
        f"kill points tried={len(tried)} processes killed={kills} "
        f"jobs expected={len(expected)} found={sum(found.values())} "
        f"distinct={len(found)} duplicates={len(duplicates)} "
        f"definition revisions={len(revisions['jobDefinitions'])} "
        f"intents adopted={adopted} settled as never sent={lost}"
    )
    report("kill points: " + ", ".join(tried))
    assert kills >= 12, f"too few kills landed: {tried}"
    # Both settle paths ran: jobs that reached AWS were adopted, unsent ones resubmitted.
    assert adopted > 0 and lost > 0
    assert duplicates == {}
    assert set(found) == expected
    assert len(revisions["jobDefinitions"]) == 1
