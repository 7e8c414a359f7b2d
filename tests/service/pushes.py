"""Helpers of the daemon service tests: a signed GitHub push event, and a bounded wait."""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

from tests.support.waiting import wait_until

SECRET = "service-tests-secret"


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` (every 20 ms) until it holds; fail after ``timeout`` seconds."""
    wait_until("the daemon service test's condition", condition, timeout, 0.02)


def push_event(url: str, *, secret: str = SECRET) -> int:
    """POST a GitHub push event (a fresh delivery id, signed with ``secret``) to ``url``;
    returns the HTTP status."""
    body = b'{"ref": "refs/heads/main"}'
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256="
            + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
