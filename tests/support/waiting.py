"""Waiting without sleeping blind: poll a check until it holds or a deadline passes.

Every wait in the suite goes through :func:`wait_until`, so each one is bounded and
says what it waited for when it times out (a loaded 2-core machine is slow, never
wrong about what it waits for)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    what: str, check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Call ``check`` until it returns something truthy and return that; fail the test
    with ``what`` once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
