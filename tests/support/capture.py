"""What a process shows the world, captured for the secret-leak tests: its JSON logs
(the production log configuration, into a buffer) and its HTTP answers."""

from __future__ import annotations

import io
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import structlog

from controller.logs import configure


def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The production log configuration rendering JSON into a buffer (stdout and stderr
    both), for the length of a test; structlog's defaults afterwards."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    monkeypatch.setattr(sys, "stdout", buffer)
    configure("json")
    yield buffer
    monkeypatch.undo()
    structlog.reset_defaults()


def fetch(url: str) -> str:
    """The body of a GET, whatever its status (an error page is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return str(reply.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())
