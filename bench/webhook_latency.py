"""Commit -> first SubmitJob, when a push webhook asks the daemon for a pass.

A real :class:`controller.service.daemon.Daemon` (APScheduler loop, HTTP server) watches
a ``git://`` remote served by ``git daemon``, with a poll interval of an hour so
that only the webhook can start a pass. Each round commits one new job
manifest, pushes it, and sends a signed GitHub ``push`` event to
``POST /webhook``; the latency runs from the end of the push (when GitHub would
send the event) to the moment botocore sends the SubmitJob for that job. When
the daemon has no webhook route (an older controller), ``Daemon.trigger()`` is
called directly instead, and the result says so.
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
