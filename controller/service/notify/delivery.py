"""The only HTTP client of commit statuses and notifications: one :class:`Sink` per destination.

A sink owns a bounded queue and one worker thread, so a forge or a chat that is
slow or down never holds up a reconcile pass: :meth:`Sink.submit` only enqueues
(or counts a drop when the queue is full). Messages carry a key; a newer message
with the key of one still queued replaces it (a commit's newer status makes the
older one pointless), so a queue fed every pass does not grow while the
destination is down.

Retries are urllib3's (``Retry``: exponential backoff with a cap, ``Retry-After``
honoured, only on 429/5xx and connection errors). A message that still fails is
counted and dropped, and the sink rests for ``pause`` seconds before its next
attempt, so a dead endpoint sees a handful of requests a minute, not a storm.
The first failure of a streak is logged (and the recovery after it); the rest are
only counted. Nothing logged or counted holds a URL path, a query or a token:
Slack webhook URLs carry their secret in the path, so a destination is named by
its scheme and host only, and response text is scrubbed of every secret.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from controller import __version__, metrics

log = structlog.get_logger(__name__)

USER_AGENT = f"batch-gitops/{__version__}"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Request:
    """One HTTP call: JSON body, headers (which may hold a token: never logged)."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class RetryPolicy:
    """How hard one message is tried: ``attempts`` in all, backoff doubling from
    ``backoff`` seconds up to ``backoff_max``; then the sink rests ``pause`` seconds."""

    attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 30.0
    pause: float = 60.0
    timeout: float = 10.0

    def urllib3_retry(self) -> Retry:
        return Retry(
            total=max(0, self.attempts - 1),
            backoff_factor=self.backoff,
            backoff_max=self.backoff_max,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # POST too: a status or a chat message is safe to resend
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            redirect=0,
        )


# Told how a message ended: sent, failed, rejected, dropped or superseded.
OnDone = Callable[[str], None]


@dataclass
class _Item:
    request: Request
    on_done: OnDone | None


# Judges a final response: ``(status, body) -> "sent" | "failed" | "rejected"``.
Verdict = Callable[[int, bytes], str]


def default_verdict(status: int, _: bytes) -> str:
    if 200 <= status < 300:
        return "sent"
    return "failed" if status in RETRY_STATUSES else "rejected"


def destination(url: str) -> str:
    """What logs may say about a URL: scheme and host, never its path or credentials."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class Sink:
    """One destination: a bounded, keyed queue drained by one worker thread."""

    def __init__(
        self,
        sink: str,
        *,
        secrets: Iterable[str] = (),
        capacity: int = 1000,
        retry: RetryPolicy | None = None,
        verdict: Verdict = default_verdict,
        min_interval: float = 0.0,
    ) -> None:
        self.sink = sink  # the metric label: github | gitlab | webhook
        self.capacity = capacity
        self.retry = retry or RetryPolicy()
        self.verdict = verdict
        self.min_interval = min_interval  # pacing between requests (forge rate limits)
        self._secrets = [s for s in secrets if s]
        self._queue: OrderedDict[str, _Item] = OrderedDict()
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._paused_until = 0.0
        self._last_sent = 0.0
        self._failures = 0  # failures of the current streak (logged once)
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(total=self.retry.timeout),
            retries=self.retry.urllib3_retry(),
            headers={"User-Agent": USER_AGENT},
        )
        self._thread = threading.Thread(target=self._work, name=f"notify-{sink}", daemon=True)
        self._thread.start()

    # --- producer side (the pass thread): never blocks on the network ---
    def submit(self, key: str, request: Request, on_done: OnDone | None = None) -> bool:
        """Queue ``request``; False (counted ``dropped``) when the queue is full."""
        ended: tuple[_Item, str] | None = None
        with self._cond:
            if key in self._queue:
                metrics.NOTIFICATIONS.labels(sink=self.sink, result="superseded").inc()
                ended = (self._queue.pop(key), "superseded")
            elif self._closing or len(self._queue) >= self.capacity:
                metrics.NOTIFICATIONS.labels(sink=self.sink, result="dropped").inc()
                ended = (_Item(request, on_done), "dropped")
            if ended is None or ended[1] == "superseded":
                self._queue[key] = _Item(request, on_done)
                self._cond.notify()
        if ended is not None and ended[0].on_done is not None:
            ended[0].on_done(ended[1])
        return ended is None or ended[1] != "dropped"

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or in flight (tests, shutdown), within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued for up to ``timeout`` seconds, then stop the worker.

        A sink resting after a failure does not wait: its destination is down.
        """
        with self._cond:
            resting = self._paused_until > time.monotonic()
        if not resting:
            self.wait_idle(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
        self.http.clear()

    # --- the worker ---
    def _next(self) -> _Item | None:
        with self._cond:
            while True:
                if self._closing:
                    return None
                wait = self._paused_until - time.monotonic()
                if self._queue and wait <= 0:
                    _, item = self._queue.popitem(last=False)
                    self._busy = True
                    return item
                self._cond.wait(wait if self._queue else None)

    def _work(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            try:
                self._deliver(item)
            except Exception:  # a bug here must not end the worker (or reach the pass)
                log.exception("notification_crashed", sink=self.sink)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, item: _Item) -> None:
        gap = self.min_interval - (time.monotonic() - self._last_sent)
        if gap > 0:
            time.sleep(gap)
        result, detail = self._send(item.request)
        self._last_sent = time.monotonic()
        metrics.NOTIFICATIONS.labels(sink=self.sink, result=result).inc()
        where = destination(item.request.url)
        if result == "sent":
            if self._failures:
                log.info(
                    "notification_recovered",
                    sink=self.sink,
                    destination=where,
                    failures=self._failures,
                )
            self._failures = 0
        else:
            self._failures += 1
        if item.on_done is not None:
            item.on_done(result)
        if result == "sent":
            return
        with self._cond:
            self._paused_until = time.monotonic() + self.retry.pause
        if self._failures == 1:  # once per streak; the counter has every one
            log.warning(
                "notification_failed",
                sink=self.sink,
                destination=where,
                result=result,
                error=detail,
                retry_in_seconds=self.retry.pause,
            )

    def _send(self, request: Request) -> tuple[str, str]:
        body = json.dumps(request.body).encode()
        try:
            reply = self.http.request(
                request.method,
                request.url,
                body=body,
                headers={**request.headers, "Content-Type": "application/json"},
            )
        except Urllib3Error as exc:
            # str(exc) names the URL (a Slack URL is a secret): the class names only.
            reason = getattr(exc, "reason", None)
            name = type(reason).__name__ if reason is not None else type(exc).__name__
            return "failed", f"{type(exc).__name__}: {name}"
        result = self.verdict(reply.status, reply.data)
        return result, "" if result == "sent" else self._describe(reply.status, reply.data)

    def _describe(self, status: int, data: bytes) -> str:
        text = data[:500].decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
            if isinstance(parsed, dict) and "message" in parsed:
                text = str(parsed["message"])
        except ValueError:
            pass
        return self.scrub(f"HTTP {status}: {text.strip()[:200]}")

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


@dataclass
class TokenBucket:
    """``per_minute`` messages a minute, in bursts of up to ``burst`` (default: a minute's)."""

    per_minute: float
    burst: float | None = None
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        self._capacity = self.burst if self.burst is not None else max(1.0, self.per_minute)
        self._tokens = self._capacity
        self._updated = self.clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self._tokens = min(
                self._capacity, self._tokens + (now - self._updated) * self.per_minute / 60
            )
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False
