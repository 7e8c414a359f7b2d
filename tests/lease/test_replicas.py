"""Two real controller processes (``python -m controller run``) on one repository and one
AWS account (moto: Batch and DynamoDB over HTTP): the leader is killed with SIGKILL in
the middle of a 40-job commit and the standby finishes it; two replicas run through
many commits with hand-overs. Every job name must exist exactly once in AWS."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.demo import backend as demo_backend
from tests.conftest import ROOT, GitRepo
from tests.git_pressure.servers import free_port
from tests.lease.conftest import TABLE
from tests.lease.test_takeover import DEFINITION, job, runs_by_name
from tests.reliability.conftest import NUMBERS
from tests.support.cli import start_cli
from tests.support.waiting import wait_until

LEASE_SECONDS = 2.0
POLL = LEASE_SECONDS / 4


class Replica:
    def __init__(self, name: str, proc: subprocess.Popen[str], port: int, log: Path) -> None:
        self.name, self.proc, self.port, self.log = name, proc, port, log

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def leader(self) -> bool:
        status, text = self.get("/metrics")
        return status == 200 and "\nbatch_gitops_leader 1.0" in text

    def standby(self) -> bool:
        status, text = self.get("/readyz")
        return status != 0 and "standby" in text

    def stop(self, sig: signal.Signals, timeout: float = 30) -> None:
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            tail = "\n".join(self.log.read_text().splitlines()[-30:])
            pytest.fail(f"replica {self.name} still runs {timeout}s after {sig.name}:\n{tail}")

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{") and f'"event": "{name}"' in line:
                found.append(json.loads(line))
        return found


def numbers(line: str) -> None:
    """Into the 'reliability numbers' summary at the end of the run (whatever -s says)."""
    NUMBERS.append(line)
    print(line)


def writers_in_time_order(replicas: list[Replica]) -> list[str]:
    """The replica behind each Batch write, ordered by the time it was logged."""
    writes = [
        (event["timestamp"], replica.name)
        for replica in replicas
        for event in replica.events("action")
    ]
    return [name for _, name in sorted(writes)]


def handoffs(writers: list[str]) -> int:
    return sum(1 for before, after in itertools.pairwise(writers) if before != after)


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` holds (polled every 50 ms); fails the test after ``timeout``."""
    started = time.monotonic()
    wait_until(what, check, timeout)
    return time.monotonic() - started


@pytest.fixture
def replicas(
    dynamodb: Any, moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path
) -> Iterator[Callable[[str], Replica]]:
    """``replicas(name)`` starts `batch-gitops run` leading through the lease (its own
    ledger and cache, JSON log in tmp_path/NAME.log); all are killed at the end."""
    started: list[Replica] = []

    def start(name: str) -> Replica:
        port = free_port()
        log = tmp_path / f"{name}.log"
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL_BATCH": moto.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": moto.endpoint,
            "BATCH_GITOPS_LEASE_TABLE": TABLE,
            "BATCH_GITOPS_LEASE_SECONDS": str(LEASE_SECONDS),
            "BATCH_GITOPS_WORKDIR": str(tmp_path / f"{name}-cache"),
            "BATCH_GITOPS_LOG_FORMAT": "json",
        }
        with log.open("w") as out:
            proc = start_cli(
                "run",
                "--repo",
                str(repo.path),
                "--state",
                str(tmp_path / f"{name}.sqlite"),
                "--interval",
                "1s",
                "--listen",
                f"127.0.0.1:{port}",
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        replica = Replica(name, proc, port, log)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        if replica.proc.poll() is None:
            replica.proc.kill()
            replica.proc.wait(timeout=10)


def seed(repo: GitRepo, names: list[str], message: str) -> None:
    repo.write("defs/trainer.json", DEFINITION)
    for name in names:
        repo.write(f"jobs/{name}.json", job(name))
    repo.commit(message)


def test_standby_takes_over_a_killed_leader_without_duplicates(
    replicas: Callable[[str], Replica], repo: GitRepo, batch: Any
) -> None:
    """SIGKILL of the leader while it submits 40 jobs (20/s rate limit): the standby leads
    within one lease (+ one poll) and finishes; every job exists exactly once."""
    seed(repo, [], "definition only")
    a = replicas("a")
    wait_for("a to lead", a.leader, 20)
    b = replicas("b")
    wait_for("b to stand by", b.standby, 20)
    assert not b.leader()

    names = [f"job-{i:02d}" for i in range(40)]
    seed(repo, names, "forty jobs")
    wait_for("a to start submitting", lambda: len(runs_by_name(batch)) >= 5, 20)
    a.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    a.proc.wait(timeout=5)
    by_a = len(runs_by_name(batch))

    took = wait_for("b to lead", b.leader, LEASE_SECONDS * 3)
    takeover = time.monotonic() - killed_at
    wait_for("all 40 jobs", lambda: len(runs_by_name(batch)) == 40, 30)
    counts = runs_by_name(batch)
    numbers(
        "test_standby_takes_over_a_killed_leader_without_duplicates: "
        f"leader killed after submitting {by_a}/40 jobs; standby led {takeover:.2f}s later "
        f"(lease {LEASE_SECONDS:g}s, poll {POLL:g}s); jobs expected 40, found {len(counts)}, "
        f"duplicates {sum(c - 1 for c in counts.values())}"
    )
    assert took <= LEASE_SECONDS + 2 * POLL + 0.5
    writers = writers_in_time_order([a, b])
    assert handoffs(writers) == 1 and writers[0] == "a"  # a, then only b: never interleaved
    assert counts == dict.fromkeys(names, 1)
    assert b.events("caught_up") and b.events("caught_up")[0]["adopted"] >= by_a - 1


def test_two_replicas_over_many_commits_never_both_submit(
    replicas: Callable[[str], Replica], repo: GitRepo, batch: Any
) -> None:
    """12 commits of 2 jobs each while the lease changes hands twice (SIGTERM: released;
    SIGKILL: waited out) and the stopped replica comes back: one run per job name."""
    seed(repo, [], "definition only")
    running = {"a": replicas("a"), "b": replicas("b")}
    every = list(running.values())
    wait_for("a leader", lambda: any(r.leader() for r in running.values()), 20)
    expected: list[str] = []
    handovers = 0
    gaps: dict[str, float] = {}  # signal -> seconds from the leader's exit to a new leader
    for commit in range(12):
        names = [f"c{commit:02d}-{i}" for i in range(2)]
        expected += names
        seed(repo, names, f"commit {commit}")
        time.sleep(0.4)
        if commit in (3, 7):
            leader = next(k for k, r in running.items() if r.leader())
            sig = signal.SIGTERM if commit == 3 else signal.SIGKILL
            running[leader].stop(sig)
            other = next(r for k, r in running.items() if k != leader)
            gaps[sig.name] = wait_for("the other replica to lead", other.leader, LEASE_SECONDS * 3)
            handovers += 1
            running[leader] = replicas(f"{leader}{commit}")  # the replica comes back
            every.append(running[leader])
    wait_for("every job", lambda: len(runs_by_name(batch)) == len(expected), 30)
    time.sleep(1.5)  # a few more passes: nothing more may appear
    counts = runs_by_name(batch)
    leaders = {e["holder"] for r in every for e in r.events("lease_acquired")}
    numbers(
        "test_two_replicas_over_many_commits_never_both_submit: "
        f"{len(expected)} jobs over 12 commits, {handovers} hand-overs; found {len(counts)} "
        f"names, duplicates {sum(c - 1 for c in counts.values())}, leaders {len(leaders)}; "
        f"new leader after SIGTERM (released) {gaps['SIGTERM']:.2f}s, "
        f"after SIGKILL (waited out) {gaps['SIGKILL']:.2f}s"
    )
    assert gaps["SIGTERM"] <= POLL + 0.5  # a released lease is taken at the next poll
    assert counts == dict.fromkeys(expected, 1)
    # Writes come in one block per leadership term, never interleaved between replicas.
    assert handoffs(writers_in_time_order(every)) <= handovers
    assert handovers == 2 and len(leaders) == 3  # first leader, the other, the one restarted
