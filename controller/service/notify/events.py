"""Outgoing notifications: Slack-compatible webhook messages, deduplicated and rate-limited.

The body is what a Slack incoming webhook (and Mattermost, Rocket.Chat, most chat
bridges) shows — ``text`` — plus structured fields for anything that routes on
them: ``event``, ``commit``, ``author``, ``manifest``, ``job``, ``queue``,
``status``, ``reason`` (and ``controller``). Slack ignores fields it does not know.

Each :class:`Event` carries a key naming the thing that happened (a failed job's
run, one rejected revision, one set of invalid files): a key is sent once, so a
condition that lasts for many passes is one message. Each URL has a token
bucket; what exceeds it is dropped and counted, and the next message that goes
out says how many were dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import structlog
from pydantic import SecretStr

from controller import metrics
from controller.logs import redact_text
from controller.service.notify.delivery import Request, Sink, TokenBucket

log = structlog.get_logger(__name__)

EVENTS = (
    "job-failed",
    "manifests-invalid",
    "prunes-held",
    "source-unreachable",
    "source-recovered",
    "signature-rejected",
)
SEEN_CAPACITY = 10_000


@dataclass(frozen=True)
class Event:
    event: str
    key: str  # the same key is never sent twice
    text: str
    commit: str = ""
    author: str = ""
    manifest: str = ""
    job: str = ""
    queue: str = ""
    status: str = ""
    reason: str = ""

    def body(self, controller_id: str, dropped: int = 0) -> dict[str, Any]:
        fields = asdict(self)
        del fields["key"]
        text = self.text
        if dropped:
            text += f"\n({dropped} earlier notifications were dropped by the rate limit)"
        body: dict[str, Any] = {
            **{k: redact_text(v) if isinstance(v, str) else v for k, v in fields.items()},
            "text": redact_text(text),
            "controller": controller_id,
        }
        if dropped:
            body["dropped"] = dropped
        return body


class _Url:
    def __init__(self, url: SecretStr, sink: Sink, bucket: TokenBucket) -> None:
        self.url = url
        self.sink = sink
        self.bucket = bucket
        self.dropped = 0  # rate-limited since the last message that went out


class Notifier:
    """Sends events to every configured URL (each its own :class:`Sink`)."""

    def __init__(
        self,
        urls: list[SecretStr],
        *,
        controller_id: str,
        rate_per_minute: float,
        make_sink: Callable[[], Sink],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.controller_id = controller_id
        self._urls = [
            _Url(
                url,
                make_sink(),
                TokenBucket(rate_per_minute, clock=clock),
            )
            for url in urls
        ]
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def sinks(self) -> list[Sink]:
        return [u.sink for u in self._urls]

    def notify(self, event: Event) -> bool:
        """Queue ``event`` for every URL; False if its key was sent before."""
        with self._lock:
            if event.key in self._seen:
                metrics.NOTIFICATIONS.labels(sink="webhook", result="deduplicated").inc()
                return False
            self._seen[event.key] = None
            while len(self._seen) > SEEN_CAPACITY:
                self._seen.popitem(last=False)
            for target in self._urls:
                self._send(target, event)
        return True

    def _send(self, target: _Url, event: Event) -> None:
        if not target.bucket.take():
            if not target.dropped:  # once per streak; the counter has every one
                log.warning("notifications_rate_limited", sink="webhook", kind=event.event)
            target.dropped += 1
            metrics.NOTIFICATIONS.labels(sink="webhook", result="rate-limited").inc()
            return
        request = Request(
            "POST",
            target.url.get_secret_value(),
            {},
            event.body(self.controller_id, target.dropped),
        )
        target.dropped = 0
        target.sink.submit(event.key, request)

    def close(self, timeout: float) -> None:
        for target in self._urls:
            target.sink.close(timeout)
