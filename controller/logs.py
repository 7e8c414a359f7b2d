"""structlog configuration: JSON when not on a TTY, pretty on a TTY.

``pass_id`` and ``revision`` are bound per pass through contextvars. A last
processor redacts anything that looks like a credential, so a secret that
slips into an event (a git URL with a token, an AWS key) never reaches output.
"""

from __future__ import annotations

import logging
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


def configure(
    log_format: str = "auto", level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Render to ``stream`` (default stderr): JSON, or pretty on a TTY when ``auto``."""
    stream = stream or sys.stderr
    render_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if render_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _drop_none,
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def _drop_none(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: v for k, v in event.items() if v is not None}
