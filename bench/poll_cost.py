"""What a poll of an unchanged remote costs on the wire.

The controller watches a ``git://`` URL served by a real ``git daemon`` through
a counting proxy. After a first pass (which clones the mirror), passes over the
unchanged remote are counted: connections, bytes each way, and whether any
connection asked for objects (``command=fetch``). For scale, the same numbers
for a plain ``git ls-remote`` and for the pass after a new commit (which must
fetch) are measured on the same server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench import corpus, runtime
from bench.git_server import Connection, GitServer
from bench.remote import publish


@dataclass
class WireCost:
    label: str
    connections: int
    fetches: int
    bytes_sent: int
    bytes_received: int
    seconds: float


@dataclass
class PollCost:
    manifests: int
    unchanged: WireCost
    ls_remote: WireCost
    changed: WireCost


def _cost(label: str, connections: list[Connection], seconds: float) -> WireCost:
    return WireCost(
        label,
        len(connections),
        sum(1 for c in connections if c.fetched),
        sum(len(c.sent) for c in connections),
        sum(c.received for c in connections),
        seconds,
    )


def _settle(server: GitServer, count: int, timeout: float = 5.0) -> None:
    """Let the proxy threads finish recording (the client may exit first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(server.proxy.snapshot()) < count:
        time.sleep(0.01)
    time.sleep(0.05)


def measure(server: GitServer, workdir: Path, manifests: int, polls: int = 3) -> PollCost:
    work = corpus.init_repo(workdir / "work")
    corpus.write_jobs(work, range(manifests), "poll")
    corpus.commit(work, "jobs")
    remote = publish(server, work, "poll.git")
    controller = runtime.open_controller(runtime.settings(remote.url, workdir / "ledger.sqlite"))
    try:
        first = controller.run()
        if first.result != "ok":
            raise RuntimeError(f"first pass: {first.result} {first.message}")
        unchanged: list[WireCost] = []
        for _ in range(polls):
            server.proxy.reset()
            started = time.perf_counter()
            outcome = controller.run()
            seconds = time.perf_counter() - started
            _settle(server, 1)
            if outcome.result != "ok":
                raise RuntimeError(f"unchanged pass: {outcome.result} {outcome.message}")
            unchanged.append(_cost("pass, remote unchanged", server.proxy.snapshot(), seconds))

        server.proxy.reset()
        started = time.perf_counter()
        corpus.git(workdir, "ls-remote", remote.url, "refs/heads/main")
        seconds = time.perf_counter() - started
        _settle(server, 1)
        ls_remote = _cost("git ls-remote", server.proxy.snapshot(), seconds)

        corpus.write_jobs(work, range(manifests, manifests + 1), "poll")
        corpus.commit(work, "one more job")
        remote.push()
        server.proxy.reset()
        started = time.perf_counter()
        outcome = controller.run()
        seconds = time.perf_counter() - started
        _settle(server, 2)
        changed = _cost("pass, one new commit", server.proxy.snapshot(), seconds)
    finally:
        controller.close()
    # The worst of the unchanged polls: the claim is about every poll, not the best one.
    worst = max(unchanged, key=lambda c: (c.connections, c.fetches, c.bytes_received))
    return PollCost(manifests, worst, ls_remote, changed)
