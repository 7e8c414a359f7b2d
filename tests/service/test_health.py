"""/readyz: ready only while the branch head is being applied and passes are recent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from controller.service.server import Health, make_app, serve


@pytest.mark.parametrize(
    "result,ready",
    [
        ("ok", True),
        ("degraded", True),
        ("source-error", False),
        ("error", False),
        ("untrusted", False),
        ("rejected", False),
    ],
)
def test_readiness_follows_the_last_pass(result: str, ready: bool) -> None:
    """A refused head (unsigned, too many files) is as not-ready as an unreadable source."""
    health = Health(ready_after=60)
    health.update(result="ok", revision="a" * 40, message="")
    health.update(result=result, revision="b" * 40, message="why")
    assert health.readiness()[0] is ready


def test_stale_success_is_not_ready() -> None:
    """A good pass older than ready_after (0 s here) no longer makes /readyz ready."""
    health = Health(ready_after=0.0)
    health.update(result="ok", revision="a" * 40, message="")
    assert health.readiness()[0] is False


def test_endpoints_over_http() -> None:
    """/healthz is 200 before any pass; /readyz is 503 until a good pass, then 200."""
    health = Health(ready_after=60)
    server = serve("127.0.0.1:0", make_app(health))
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert json.load(urllib.request.urlopen(f"{base}/healthz", timeout=5))["alive"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        assert refused.value.code == 503
        health.update(result="ok", revision="c" * 40, message="")
        body = json.load(urllib.request.urlopen(f"{base}/readyz", timeout=5))
        assert body["ready"] is True and body["revision"] == "c" * 40
    finally:
        server.shutdown()
