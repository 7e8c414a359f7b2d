"""A pass over an unchanged revision of a big repository, and the daemon's memory on it.

Setup: N job manifests, of which N - A were submitted while moto finished jobs
at once (SUCCEEDED) and the last A while moto kept them queued, so A jobs are
active — what a busy repository looks like. Then, without any commit:

* the same controller passes again, three times (warm: its caches hold the revision);
* a restarted controller (same ledger, empty caches) passes once;
* ``batch-gitops run`` runs as a separate process on the same repository and
  ledger, and its resident memory is read from ``/proc`` after two passes.

Every Batch request is counted; the bound is one DescribeJobs per 100 active
jobs plus one call per queue. The wall time is compared with one ListJobs of
the queue on the same server (moto answers it with every job it holds).
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench import corpus, runtime
from bench.calls import WRITES, CallCounter
from bench.cli_vs_controller import batch_gitops
from bench.endpoint import MotoEndpoint
from controller.settings import Settings

QUEUES = 1
DAEMON_TIMEOUT = 600.0


@dataclass
class PassCost:
    label: str
    seconds: float
    reads: int
    writes: int
    result: str


@dataclass
class UnchangedPass:
    manifests: int
    active: int
    list_jobs_seconds: float
    passes: list[PassCost]

    @property
    def read_bound(self) -> int:
        return math.ceil(self.active / 100) + QUEUES


@dataclass
class DaemonMemory:
    manifests: int
    rss_mib: float
    peak_mib: float
    passes: int
    writes: int


@dataclass
class BigRepository:
    """What the memory measurement reuses: the repository and the ledger."""

    settings: Settings
    manifests: int


def _passes(
    controller: runtime.Controller, counter: CallCounter, label: str, runs: int = 1
) -> PassCost:
    """``runs`` passes: the median wall time, the most calls any of them made, the worst
    result (the machine is shared; one sample of the wall time is noise)."""
    seconds, reads, writes, results = [], 0, 0, set()
    for _ in range(runs):
        counter.clear()
        started = time.perf_counter()
        outcome = controller.run()
        seconds.append(time.perf_counter() - started)
        reads, writes = max(reads, len(counter.reads)), max(writes, len(counter.writes))
        results.add(outcome.result)
    result = "ok" if results == {"ok"} else ",".join(sorted(results - {"ok"}))
    return PassCost(label, statistics.median(seconds), reads, writes, result)


def list_jobs_seconds(moto: MotoEndpoint, samples: int = 3) -> float:
    """Median wall time of one ListJobs of the queue (no filter: moto returns everything)."""
    client = moto.client()
    client.list_jobs(jobQueue=corpus.QUEUE)  # connection set-up and botocore's model load
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        client.list_jobs(jobQueue=corpus.QUEUE)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(
    moto: MotoEndpoint, workdir: Path, manifests: int, active: int, warm_runs: int = 3
) -> tuple[UnchangedPass, BigRepository]:
    if not 0 <= active <= manifests:
        raise ValueError("active jobs must be between 0 and the number of manifests")
    repo = corpus.init_repo(workdir / "repo")
    corpus.write_jobs(repo, range(manifests - active))
    corpus.commit(repo, "finished jobs")
    moto.fresh()
    settings = runtime.settings(str(repo), workdir / "ledger.sqlite")
    controller = runtime.open_controller(settings)
    try:
        setup = [controller.run()]
        moto.set_mode("queued")  # from here on, new jobs stay SUBMITTED
        corpus.write_jobs(repo, range(manifests - active, manifests))
        corpus.commit(repo, "active jobs")
        setup.append(controller.run())
        broken = [p for p in setup if p.result != "ok"]
        if broken:
            raise RuntimeError(f"setup pass failed: {broken[0].result} {broken[0].message}")
        listing = list_jobs_seconds(moto)
        counter = CallCounter(controller.api)
        passes = [_passes(controller, counter, f"warm, median of {warm_runs}", warm_runs)]
        controller.close()
        controller = controller.restarted()
        counter = CallCounter(controller.api)
        passes.append(_passes(controller, counter, "first after a restart"))
    finally:
        controller.close()
    result = UnchangedPass(manifests, active, listing, passes)
    return result, BigRepository(settings, manifests)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _metrics(url: str) -> dict[str, dict[str, float]]:
    """``{sample name: {label value: value}}`` of the daemon's /metrics, {} if not up yet."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return {}
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[label] = sample.value
    return out


def _memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MiB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


def daemon_memory(
    moto: MotoEndpoint, big: BigRepository, workdir: Path, passes: int = 2
) -> DaemonMemory:
    """``batch-gitops run`` on the big repository and ledger; memory after ``passes`` passes."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **moto.environment(),
        **runtime.environment(big.settings),
        "BATCH_GITOPS_LISTEN": f"127.0.0.1:{port}",
        "BATCH_GITOPS_INTERVAL": "2s",
    }
    log = (workdir / "daemon.log").open("a")
    process = subprocess.Popen(
        [*batch_gitops(), "run"], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + DAEMON_TIMEOUT
        done = 0.0
        while done < passes:
            if process.poll() is not None:
                raise RuntimeError(f"the daemon exited ({process.returncode}); see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not finish {passes} passes in time")
            time.sleep(0.2)
            done = sum(_metrics(url).get("batch_gitops_passes_total", {}).values())
        rss, peak = _memory_mib(process.pid)
        requests = _metrics(url).get("batch_gitops_aws_requests_total", {})
        writes = sum(
            value for label, value in requests.items() if label.removeprefix("operation=") in WRITES
        )
        return DaemonMemory(big.manifests, rss, peak, int(done), int(writes))
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
