"""Commit -> first SubmitJob, when a push webhook asks the daemon for a pass.

A real :class:`controller.service.daemon.Daemon` (APScheduler loop, HTTP server) watches
a ``git://`` remote served by ``git daemon``, with a poll interval of an hour so
that only the webhook can start a pass. Each round commits one new job
manifest, pushes it, and sends a signed GitHub ``push`` event to
``POST /webhook``; the latency runs from the end of the push (when GitHub would
send the event) to the moment botocore sends the SubmitJob for that job. When
the daemon has no webhook route (an older controller), ``Daemon.trigger()`` is
called directly instead, and the result says so.

:func:`measure_busy` pushes while a pass is running (a wave of jobs at the default
rate): the pushed job must wait only for that pass to end, and ten pushes during
it must cause exactly one follow-up pass.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import statistics
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import corpus, runtime
from bench.calls import CallCounter
from bench.git_server import GitServer
from bench.remote import publish
from controller.service.daemon import Daemon
from controller.settings import Settings
from controller.state.sqlite import SqliteLedger

SECRET = "bench-webhook-secret"
ROUND_TIMEOUT = 60.0
PREFIX = "hook"


@dataclass
class BusyRound:
    pushed: float  # perf_counter() when the push ended (its webhook events follow)
    pass_ended: float  # when the pass that was running at the push ended
    submitted: float  # when the pushed job's SubmitJob was sent
    follow_ups: int  # passes started after that pass, for the ten pushes

    @property
    def latency(self) -> float:
        return self.submitted - self.pushed

    @property
    def remaining(self) -> float:
        return self.pass_ended - self.pushed

    @property
    def after_pass(self) -> float:
        return self.submitted - self.pass_ended


@dataclass
class BusyLatency:
    wave: int  # jobs of the pass running when the push arrives
    pushes: int  # webhook events per round, all during that pass
    rounds: list[BusyRound]

    @property
    def p50_after_pass(self) -> float:
        return statistics.median(r.after_pass for r in self.rounds)

    @property
    def worst_over(self) -> float:
        """The most any round's latency exceeded the running pass's remaining time."""
        return max(r.latency - r.remaining for r in self.rounds)


@dataclass
class WebhookLatency:
    manifests: int
    via: str  # "POST /webhook" or "Daemon.trigger()"
    latencies: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p90(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _has_webhook() -> bool:
    return "webhook_secret" in Settings.model_fields


def _post_push(url: str) -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"{url}/webhook",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        if reply.status != 202:
            raise RuntimeError(f"POST /webhook answered {reply.status}")


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + ROUND_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)


def measure(server: GitServer, workdir: Path, manifests: int, commits: int) -> WebhookLatency:
    work = corpus.init_repo(workdir / "work")
    corpus.write_jobs(work, range(manifests), PREFIX)
    corpus.commit(work, "jobs")
    remote = publish(server, work, "hook.git")
    extra = {"webhook_secret": SECRET} if _has_webhook() else {}
    settings = runtime.settings(
        remote.url, workdir / "ledger.sqlite", interval=3600.0, listen="127.0.0.1:0", **extra
    )
    api = runtime.adapter(settings)
    counter = CallCounter(api)
    daemon = Daemon(settings, api, SqliteLedger(settings.state))
    daemon.start()
    url = f"http://127.0.0.1:{daemon.server.server_port}"
    via = "POST /webhook" if _has_webhook() else "Daemon.trigger()"
    latencies: list[float] = []
    try:
        _wait(lambda: daemon.passes >= 1, "the first pass")
        for index in range(manifests, manifests + commits):
            before = daemon.passes
            corpus.write_jobs(work, range(index, index + 1), PREFIX)
            corpus.commit(work, f"job {index}")
            remote.push()
            pushed = time.perf_counter()
            if via == "POST /webhook":
                _post_push(url)
            else:
                daemon.trigger()
            _wait(lambda b=before: daemon.passes > b, "the triggered pass")
            submitted = counter.first("SubmitJob", after=pushed)
            if submitted is None:
                raise RuntimeError(f"the pass after commit {index} submitted nothing")
            latencies.append(submitted - pushed)
    finally:
        daemon.stop()
        daemon.ledger.close()
    return WebhookLatency(manifests, via, latencies)


def measure_busy(
    server: GitServer, workdir: Path, wave: int, rounds: int, pushes: int = 10
) -> BusyLatency:
    """Pushes while a pass runs: each round commits ``wave`` jobs and announces them; once
    that pass has sent a third of its SubmitJobs, one more job is committed, pushed and
    announced ``pushes`` times. The pushed job must be submitted by exactly one follow-up
    pass, started as soon as the running one ends. Default rate limit (AWS's 50/s)."""
    work = corpus.init_repo(workdir / "work")
    corpus.write_jobs(work, range(1), PREFIX)
    corpus.commit(work, "first job")
    remote = publish(server, work, "busy.git")
    default_rate = float(Settings.model_fields["rate_limit"].default)
    settings = runtime.settings(
        remote.url,
        workdir / "ledger.sqlite",
        rate_limit=default_rate,
        interval=3600.0,
        listen="127.0.0.1:0",
        webhook_secret=SECRET,
    )
    api = runtime.adapter(settings)
    counter = CallCounter(api)
    daemon = Daemon(settings, api, SqliteLedger(settings.state))
    ended: list[float] = []
    run_once = daemon.run_once

    def timed_pass() -> Any:
        outcome = run_once()
        ended.append(time.perf_counter())
        return outcome

    daemon.run_once = timed_pass  # type: ignore[method-assign]
    daemon.start()
    url = f"http://127.0.0.1:{daemon.server.server_port}"
    results: list[BusyRound] = []
    next_index = 1
    try:
        _wait(lambda: daemon.passes >= 1, "the first pass")
        for _ in range(rounds):
            before = daemon.passes
            corpus.write_jobs(work, range(next_index, next_index + wave), PREFIX)
            next_index += wave
            corpus.commit(work, f"{wave} jobs")
            remote.push()
            started = time.perf_counter()
            _post_push(url)
            _wait(
                lambda s=started: counter.count("SubmitJob", after=s) >= wave // 3,
                "the wave's first third",
            )
            corpus.write_jobs(work, range(next_index, next_index + 1), PREFIX)
            next_index += 1
            corpus.commit(work, "one more job")
            remote.push()
            pushed = time.perf_counter()  # GitHub sends its event now
            for _ in range(pushes):
                _post_push(url)
            _wait(
                lambda b=before: daemon.passes >= b + 2 and not daemon.pass_pending,
                "the follow-up pass",
            )
            pass_ended = next(t for t in ended if t > pushed)
            submitted = counter.first("SubmitJob", after=pass_ended)
            if submitted is None:
                raise RuntimeError("the follow-up pass submitted nothing")
            results.append(BusyRound(pushed, pass_ended, submitted, daemon.passes - before - 1))
    finally:
        daemon.stop()
        daemon.ledger.close()
    return BusyLatency(wave, pushes, results)
