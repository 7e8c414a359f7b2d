"""structlog configuration: JSON when not on a TTY, pretty on a TTY.

Logs always go to stderr (or a file); human output is the commands' own, on
stdout. One-shot commands log warnings and above unless asked for more; the
daemon logs info and above. Colours only on a terminal, never with ``NO_COLOR``
(https://no-color.org). ``pass_id`` and ``revision`` are bound per pass through
contextvars. A last processor redacts anything that looks like a credential, so
a secret that slips into an event (a git URL with a token, an AWS key) never
reaches output. Called by ``controller.cli`` (every command) and the demo.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"(secret|token|password|passwd|credential|authorization)", re.I)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", re.I)
# 40 characters with both cases: an AWS secret key, never a (lowercase hex) commit SHA.
_AWS_SECRET = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+=]{0,39}[A-Z])(?=[A-Za-z0-9/+=]{0,39}[a-z])"
    r"[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
)
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def redact_text(text: str) -> str:
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    text = _AWS_KEY_ID.sub("***", text)
    return _AWS_SECRET.sub("***", text)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and value is not None:
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def colors_wanted(stream: TextIO) -> bool:
    """Colours for a terminal, unless NO_COLOR is set to anything non-empty."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def configure(
    log_format: str = "auto",
    level: int = logging.INFO,
    stream: TextIO | None = None,
    *,
    json_when_auto: bool | None = None,
    quiet_idle_passes: bool = False,
) -> None:
    """Render to ``stream`` (default stderr): JSON, or pretty on a TTY when ``auto``.

    ``json_when_auto``: what ``auto`` means (default: JSON unless ``stream`` is a TTY; the
    daemon passes True). ``quiet_idle_passes`` drops a ``pass`` event that repeats the
    previous one without any action (the demo's log file, which a person tails).
    """
    stream = stream or sys.stderr
    if json_when_auto is None:
        json_when_auto = not stream.isatty()
    render_json = log_format == "json" or (log_format == "auto" and json_when_auto)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if render_json
        else structlog.dev.ConsoleRenderer(colors=colors_wanted(stream))
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _drop_none,
        _redact,
    ]
    if quiet_idle_passes:
        processors.append(IdlePassFilter())
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def _drop_none(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: v for k, v in event.items() if v is not None}


class IdlePassFilter:
    """Drops a ``pass`` event that only repeats the last one: same result, revision and
    counts, and no action taken. The first pass and every change still show."""

    def __init__(self) -> None:
        self.last: tuple[Any, ...] | None = None

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event.get("event") != "pass":
            return event
        counts = tuple(
            sorted(
                (k, v)
                for k, v in event.items()
                if isinstance(v, int) and not isinstance(v, bool) and k != "duration_seconds"
            )
        )
        acted = any(k.rsplit("_", 1)[0] in _ACTIONS for k, _ in counts)
        signature = (event.get("result"), event.get("revision"), event.get("message"), counts)
        if signature == self.last and not acted:
            raise structlog.DropEvent
        self.last = signature
        return event


_ACTIONS = frozenset({"register", "submit", "cancel", "terminate", "deregister"})
