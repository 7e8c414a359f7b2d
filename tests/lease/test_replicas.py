"""Two real controller processes (``python -m controller run``) on one repository, one AWS
account and one shared DynamoDB ledger (moto over HTTP; Batch behind the consistency
proxy, which lists new jobs late and forgets finished ones): the leader is killed or
stopped while it works and the standby carries on. At the end the jobs are counted per
identity in AWS itself: 0 duplicates, 0 removed jobs left active, 0 jobs stopped wrongly.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.demo import backend as demo_backend
from controller.model.jobstatus import ACTIVE_STATUSES
from controller.model.tags import MANAGED_BY_TAG
from controller.state.stores import open_ledger
from tests.conftest import ROOT, GitRepo, dynamodb_ledger_location
from tests.lease.test_takeover import DEFINITION, QUEUE, job
from tests.reliability.conftest import NUMBERS
from tests.support.consistency_proxy import ConsistencyProxy
from tests.support.ports import free_port
from tests.support.waiting import wait_until

LEASE_SECONDS = 2.0  # short where the default is not the point
POLL = LEASE_SECONDS / 4
LAG = 5.0  # AWS lists a new job this late (the table)


class Replica:
    def __init__(self, name: str, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
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

    def stop(self, sig: signal.Signals, timeout: float = 60) -> None:
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

    def passes_led(self) -> int:
        """Passes this replica ran as the leader (not standby, not busy)."""
        return sum(1 for e in self.events("pass") if e.get("result") not in ("standby", "busy"))


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


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.05) -> float:
    """Seconds until ``check()`` holds; fails the test after ``timeout``. A check that
    reads every job from moto polls less often (``every``): it competes for the CPU."""
    started = time.monotonic()
    wait_until(what, check, timeout, every)
    return time.monotonic() - started


def jobs_in_aws(batch: Any) -> dict[str, list[str]]:
    """Job name -> the status of each of its managed runs, read from moto directly (the
    auditor's view: the proxy's lag and forgetting do not apply)."""
    ids = [
        s["jobId"]
        for s in batch.list_jobs(jobQueue=QUEUE)["jobSummaryList"]
        if ":" not in s["jobId"]
    ]
    found: dict[str, list[str]] = {}
    for start in range(0, len(ids), 100):
        for described in batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]:
            if (described.get("tags") or {}).get(MANAGED_BY_TAG) == "batch-gitops":
                found.setdefault(described["jobName"], []).append(described["status"])
    return found


def audit(batch: Any, present: set[str], removed: set[str]) -> dict[str, int]:
    """The issue's three counts per identity, plus what is missing."""
    runs = jobs_in_aws(batch)
    return {
        "duplicates": sum(len(runs.get(n, [])) - 1 for n in present | removed if runs.get(n)),
        "missing": sum(1 for n in present if not runs.get(n)),
        "removed_left_active": sum(
            1 for n in removed for s in runs.get(n, []) if s in ACTIVE_STATUSES
        ),
        "stopped_wrongly": sum(1 for n in present for s in runs.get(n, []) if s == "FAILED"),
    }


@pytest.fixture
def late_aws(moto: demo_backend.MotoBatch) -> Iterator[ConsistencyProxy]:
    proxy = ConsistencyProxy(moto.endpoint, list_lag=LAG).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def shared(moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch) -> str:
    return dynamodb_ledger_location(moto, monkeypatch)


@pytest.fixture
def replicas(
    moto: demo_backend.MotoBatch,
    late_aws: ConsistencyProxy,
    shared: str,
    repo: GitRepo,
    tmp_path: Path,
) -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def start(name: str, lease_seconds: float | None = LEASE_SECONDS) -> Replica:
        port = free_port()
        log = tmp_path / f"{name}.log"
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL_BATCH": late_aws.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": moto.endpoint,
            "BATCH_GITOPS_STATE": shared,  # the lease lives in the ledger's table
            "BATCH_GITOPS_HOLDER_ID": name,
            "BATCH_GITOPS_WORKDIR": str(tmp_path / f"{name}-cache"),
            "BATCH_GITOPS_LOG_FORMAT": "json",
        }
        if lease_seconds is not None:  # None: the default lease (15 s)
            env["BATCH_GITOPS_LEASE_SECONDS"] = str(lease_seconds)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "controller",
                    "run",
                    "--repo",
                    str(repo.path),
                    "--interval",
                    "1s",
                    "--listen",
                    f"127.0.0.1:{port}",
                ],
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


def seed(repo: GitRepo, names: list[str], message: str, removed: list[str] = ()) -> None:  # type: ignore[assignment]
    repo.write("defs/trainer.json", DEFINITION)
    for name in names:
        repo.write(f"jobs/{name}.json", job(name))
    for name in removed:
        repo.remove(f"jobs/{name}.json")
    repo.commit(message)


def test_standby_takes_over_a_killed_leader_without_duplicates(
    replicas: Callable[..., Replica], repo: GitRepo, batch: Any
) -> None:
    """SIGKILL of the leader while it submits 40 jobs (20/s rate limit): the standby leads
    within one lease (+ one poll) and finishes, settling the claim the leader had in
    flight by its tag (AWS lists it 5 s late, inside the settle grace): each job once."""
    seed(repo, [], "definition only")
    a = replicas("a")
    wait_for("a to lead", a.leader, 30)
    b = replicas("b")
    wait_for("b to stand by", b.standby, 30)
    assert not b.leader()

    names = [f"job-{i:02d}" for i in range(40)]
    seed(repo, names, "forty jobs")
    wait_for("a to start submitting", lambda: len(jobs_in_aws(batch)) >= 5, 30, every=0.1)
    a.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    a.proc.wait(timeout=5)
    by_a = len(jobs_in_aws(batch))

    took = wait_for("b to lead", b.leader, LEASE_SECONDS * 3)
    takeover = time.monotonic() - killed_at
    wait_for("all 40 jobs", lambda: len(jobs_in_aws(batch)) == 40, 60, every=0.5)
    led = b.passes_led()
    wait_for("two more passes of b", lambda: b.passes_led() >= led + 2, 30)
    counts = audit(batch, set(names), set())
    numbers(
        "test_standby_takes_over_a_killed_leader_without_duplicates: "
        f"leader killed after submitting {by_a}/40 jobs; standby led {takeover:.2f}s later "
        f"(lease {LEASE_SECONDS:g}s, poll {POLL:g}s, listing lag {LAG:g}s); "
        f"jobs 40, found {len(jobs_in_aws(batch))}, duplicates {counts['duplicates']}; "
        "the leader's open claims settled by the standby: "
        + ", ".join(
            f"{event.removeprefix('intent_')} {len(b.events(event))}"
            for event in ("intent_too_young", "intent_adopted", "intent_lost")
        )
    )
    assert took <= LEASE_SECONDS + 2 * POLL + 1.0
    writers = writers_in_time_order([a, b])
    assert handoffs(writers) == 1 and writers[0] == "a"  # a, then only b: never interleaved
    assert counts == {"duplicates": 0, "missing": 0, "removed_left_active": 0, "stopped_wrongly": 0}


def test_graceful_handover_with_the_default_lease_under_listing_lag(
    replicas: Callable[..., Replica], repo: GitRepo, batch: Any
) -> None:
    """The issue's row: SIGTERM of the leader in the middle of 150 submissions, the default
    15 s lease, AWS listing new jobs 5 s late. The leader finishes its pass and releases;
    the standby leads at its next poll and, knowing every run from the shared ledger,
    sends nothing again although AWS does not list the newest jobs yet."""
    demo_backend.set_mode("queued")  # they stay active: every pass reads them
    seed(repo, [], "definition only")
    a = replicas("a", lease_seconds=None)
    wait_for("a to lead", a.leader, 30)
    b = replicas("b", lease_seconds=None)
    wait_for("b to stand by", b.standby, 30)
    names = [f"job-{i:03d}" for i in range(150)]
    seed(repo, names, "150 jobs")
    wait_for("a to submit 30", lambda: len(jobs_in_aws(batch)) >= 30, 30, every=0.2)
    stopped = time.monotonic()
    a.stop(signal.SIGTERM)  # finishes its pass (every submit), then releases the lease
    by_a = len(jobs_in_aws(batch))
    gap = wait_for("b to lead", b.leader, 15 / 4 + 5)
    wait_for("two passes of b", lambda: b.passes_led() >= 2, 30)
    hidden_at_takeover = b.events("jobs_not_visible_yet")
    counts = audit(batch, set(names), set())
    numbers(
        "test_graceful_handover_with_the_default_lease_under_listing_lag: 150 jobs, lease 15s "
        f"(default), listing lag {LAG:g}s; leader stopped after {by_a} submitted, finished "
        f"its pass and released the lease; the standby led {gap:.2f}s after it exited, "
        f"{time.monotonic() - stopped:.1f}s after SIGTERM it had run 2 passes, jobs not "
        f"visible to it at first {hidden_at_takeover[0]['jobs'] if hidden_at_takeover else 0}; "
        f"duplicates {counts['duplicates']}, missing {counts['missing']}"
    )
    assert len([e for e in b.events("action") if e.get("action") == "submit"]) == 150 - by_a
    assert counts == {"duplicates": 0, "missing": 0, "removed_left_active": 0, "stopped_wrongly": 0}


def test_standby_takes_over_after_aws_forgot_the_leaders_finished_jobs(
    replicas: Callable[..., Replica],
    repo: GitRepo,
    batch: Any,
    late_aws: ConsistencyProxy,
    shared: str,
) -> None:
    """The issue's row: 45 jobs ran and finished, AWS forgot them (a week passed), then the
    leader died and the standby took over: it knows them from the shared ledger and runs
    0 of them again (each replica used to have its own ledger: 40 of 45 ran again)."""
    late_aws.set_lag(0.0)
    names = [f"job-{i:02d}" for i in range(45)]
    seed(repo, names, "45 jobs")
    a = replicas("a")
    wait_for("a to lead", a.leader, 30)
    b = replicas("b")
    ledger = open_ledger(shared)

    def all_recorded_finished() -> bool:
        runs = ledger.current_jobs().values()
        return len(runs) == 45 and all(r.status == "SUCCEEDED" for r in runs)

    wait_for("a to see all 45 finish", all_recorded_finished, 60, every=0.3)
    statuses = {s["jobId"]: s["status"] for s in batch.list_jobs(jobQueue=QUEUE)["jobSummaryList"]}
    assert late_aws.forget_finished(statuses) == 45
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(timeout=5)
    wait_for("b to lead", b.leader, LEASE_SECONDS * 3)
    wait_for("two passes of b", lambda: b.passes_led() >= 2, 30)
    counts = audit(batch, set(names), set())
    resubmitted = [e for e in b.events("action") if e.get("action") == "submit"]
    numbers(
        "test_standby_takes_over_after_aws_forgot_the_leaders_finished_jobs: 45 jobs finished "
        "and forgotten by AWS; the new leader knew them from the shared ledger and never "
        f"asked AWS about them (answers that left them out: "
        f"{sum(late_aws.left_out.values())}); ran {len(resubmitted)} again; "
        f"duplicates {counts['duplicates']}"
    )
    assert resubmitted == [] and b.events("action") == []
    assert counts == {"duplicates": 0, "missing": 0, "removed_left_active": 0, "stopped_wrongly": 0}
    ledger.close()


def test_repeated_kills_and_stops_of_the_leader_under_listing_lag(
    replicas: Callable[..., Replica], repo: GitRepo, batch: Any, late_aws: ConsistencyProxy
) -> None:
    """Six commits (six jobs added, two earlier ones removed, each) while the leader is
    killed (SIGKILL) and stopped (SIGTERM) in turns and comes back, AWS listing new jobs
    5 s late: every job in git runs exactly once, every removed one is stopped, nothing
    else is (jobs stay queued, so a wrong stop would show as FAILED)."""
    demo_backend.set_mode("queued")
    running = {"a": replicas("a"), "b": replicas("b")}
    every = list(running.values())
    wait_for("a leader", lambda: any(r.leader() for r in running.values()), 30)
    present: set[str] = set()
    removed: set[str] = set()
    gaps: list[tuple[str, float]] = []
    for commit in range(6):
        names = [f"c{commit}-{i}" for i in range(6)]
        gone = sorted(present)[:2] if commit else []
        present = (present | set(names)) - set(gone)
        removed |= set(gone)
        seed(repo, names, f"commit {commit}", removed=gone)
        time.sleep(0.5)  # let the leader start on it
        if commit in (1, 2, 3, 4):
            leader = next((k for k, r in running.items() if r.leader()), None)
            if leader is None:
                continue
            sig = signal.SIGKILL if commit % 2 else signal.SIGTERM
            running[leader].stop(sig)
            other = next(r for k, r in running.items() if k != leader)
            gaps.append((sig.name, wait_for("the other to lead", other.leader, LEASE_SECONDS * 4)))
            running[leader] = replicas(f"{leader}{commit}")  # the replica comes back
            every.append(running[leader])

    def converged() -> bool:
        counts = audit(batch, present, removed)
        return counts["missing"] == 0 and counts["removed_left_active"] == 0

    wait_for("every job run and every removed one stopped", converged, 90, every=0.5)
    leader = next(r for r in running.values() if r.leader())
    led = leader.passes_led()
    wait_for("two more passes", lambda: leader.passes_led() >= led + 2, 30)
    counts = audit(batch, present, removed)
    terms = Counter(e["holder"] for r in every for e in r.events("lease_acquired"))
    numbers(
        "test_repeated_kills_and_stops_of_the_leader_under_listing_lag: "
        f"{len(present) + len(removed)} jobs over 6 commits ({len(removed)} removed again), "
        f"listing lag {LAG:g}s, {len(gaps)} hand-overs "
        f"({', '.join(f'{s} {g:.1f}s' for s, g in gaps)}), {sum(terms.values())} terms; "
        f"duplicates {counts['duplicates']}, removed left active "
        f"{counts['removed_left_active']}, stopped wrongly {counts['stopped_wrongly']}, "
        f"missing {counts['missing']}"
    )
    assert counts == {"duplicates": 0, "missing": 0, "removed_left_active": 0, "stopped_wrongly": 0}
    assert len(gaps) >= 3
    assert handoffs(writers_in_time_order(every)) <= len(gaps)  # never interleaved
