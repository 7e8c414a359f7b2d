"""A local HTTP fault proxy in front of the moto server (127.0.0.1 only).

The controller talks to this proxy exactly as it talks to AWS (boto3 over
HTTP, ``AWS_ENDPOINT_URL_BATCH``); nothing in the product knows it is there.
For every request the proxy asks a *rule* which fault, if any, to inject, and
records what it did, so tests can count SubmitJobs, measure the request rate
and print the faults they injected.

Faults (``Fault``):

* ``kill-before``      SIGKILL the controller, then drop the request unsent
* ``kill-after``       forward (AWS did it), SIGKILL the controller, no reply
* ``kill-after-reply`` forward, reply, then SIGKILL (kills between the reply
  and whatever the controller does next, e.g. its ledger write)
* ``drop-after``       forward, then close the connection without a reply
* ``5xx-after``        forward, then answer 500 as if the server failed late
* ``throttle``         answer 429 TooManyRequestsException, not forwarded
* ``5xx``              answer 500, not forwarded
* ``reset``            reset the connection (RST), not forwarded
* ``slow``             wait ``slow_seconds``, then forward normally
* ``slow-after``       forward (AWS did it), then wait ``slow_seconds`` before
  replying: a client with a shorter read timeout gives up on a done request

Besides faults, a *hook* sees every request (operation, index, body) before anything
else happens to it: what AWS does meanwhile (its scheduler starting a job between
the controller's read and its write), or what a test wants to record (the ids in
each DescribeJobs).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

Fault = Literal[
    "kill-before",
    "kill-after",
    "kill-after-reply",
    "drop-after",
    "5xx-after",
    "throttle",
    "5xx",
    "reset",
    "slow",
    "slow-after",
]
# (operation, how many requests of that operation came before this one) -> fault or None
Rule = Callable[[str, int], "Fault | None"]
# (operation, index as for a Rule, request body) -> None; runs before the rule.
Hook = Callable[[str, int, bytes], None]

# Batch's REST paths (/v1/submitjob) to operation names.
OPERATIONS = {
    name.lower(): name
    for name in (
        "SubmitJob",
        "ListJobs",
        "DescribeJobs",
        "CancelJob",
        "TerminateJob",
        "RegisterJobDefinition",
        "DeregisterJobDefinition",
        "DescribeJobDefinitions",
        "DescribeJobQueues",
        "DescribeComputeEnvironments",
        "TagResource",
    )
}


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() when the request arrived
    operation: str
    fault: str  # the injected fault, or "" for a clean pass-through


def first(count: int, fault: Fault, operation: str | None = None) -> Rule:
    """A rule: ``fault`` for the first ``count`` requests (of ``operation``, or of each
    operation), then clean pass-through."""

    def rule(op: str, index: int) -> Fault | None:
        return fault if index < count and operation in (None, op) else None

    return rule


@dataclass
class RandomFaults:
    """Inject one of ``kinds`` into ``rate`` of the requests, reproducibly (seeded)."""

    rate: float
    kinds: tuple[Fault, ...]
    seed: int = 7
    operations: frozenset[str] | None = None  # None: every operation
    _random: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def __call__(self, operation: str, index: int) -> Fault | None:
        if self.operations is not None and operation not in self.operations:
            return None
        with self._lock:
            if self._random.random() >= self.rate:
                return None
            return self._random.choice(self.kinds)


class FaultProxy:
    """Threaded HTTP proxy; ``endpoint`` is what boto3 should use instead of moto's."""

    def __init__(self, upstream: str, *, slow_seconds: float = 0.5) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.slow_seconds = slow_seconds
        self.rule: Rule | None = None
        self.hook: Hook | None = None
        self.kill_pid: int | None = None
        self.kills = 0
        self.seen: list[Seen] = []
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                # The client was killed or gave up: nothing to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    proxy._handle(self)

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the tests print their own numbers

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A 50 ms poll interval: stop() (shutdown) waits up to one interval.
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what tests read ---
    def count(self, operation: str, *, fault: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for s in self.seen
                if s.operation == operation and (fault is None or s.fault == fault)
            )

    def faults(self) -> Counter[str]:
        with self._lock:
            return Counter(s.fault for s in self.seen if s.fault)

    def reached_aws(self, operation: str) -> int:
        """Requests of ``operation`` that were forwarded to moto (AWS acted on them)."""
        forwarded = {
            "",
            "slow",
            "slow-after",
            "kill-after",
            "kill-after-reply",
            "drop-after",
            "5xx-after",
        }
        with self._lock:
            return sum(1 for s in self.seen if s.operation == operation and s.fault in forwarded)

    def max_requests_in_window(self, window: float = 1.0) -> int:
        """The most requests that arrived within any ``window`` seconds (sliding)."""
        with self._lock:
            times = sorted(s.at for s in self.seen)
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()
            self._counts.clear()

    # --- the proxy itself ---
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        segment = handler.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
        operation = OPERATIONS.get(segment, segment)
        with self._lock:
            index = self._counts[operation]
            self._counts[operation] += 1
        if self.hook is not None:
            self.hook(operation, index, body)
        fault = self.rule(operation, index) if self.rule is not None else None
        with self._lock:
            self.seen.append(Seen(time.monotonic(), operation, fault or ""))

        if fault == "kill-before":
            self._kill()
            return _reset(handler)
        if fault == "throttle":
            return _reply_error(handler, 429, "TooManyRequestsException", "Too Many Requests")
        if fault == "5xx":
            return _reply_error(handler, 500, "ServerException", "injected failure")
        if fault == "reset":
            return _reset(handler)
        if fault == "slow":
            time.sleep(self.slow_seconds)

        status, headers, data = self._forward(handler, body)
        if fault == "kill-after":
            self._kill()
            return _reset(handler)
        if fault == "drop-after":
            return _reset(handler)
        if fault == "5xx-after":
            return _reply_error(handler, 500, "ServerException", "injected failure after commit")
        if fault == "slow-after":
            time.sleep(self.slow_seconds)
        handler.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        if fault == "kill-after-reply":
            self._kill()

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
            headers["Host"] = f"{self.upstream_host}:{self.upstream_port}"
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _kill(self) -> None:
        pid = self.kill_pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
            self.kills += 1
        except ProcessLookupError:
            pass
        self.kill_pid = None  # one kill per armed process


def _reply_error(handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    data = json.dumps({"__type": code, "message": message}).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("x-amzn-ErrorType", code)
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(data)


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close with RST and no reply: the client sees the connection die mid-request."""
    handler.close_connection = True
    try:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
    except OSError:
        pass
