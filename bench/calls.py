"""Count the Batch HTTP requests a controller makes, by operation, through botocore's events.

Every attempt is counted (retries included), at the point botocore sends it:
exactly what AWS would bill against the account's API rate.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from controller.aws.batch import WRITE_OPERATIONS, Boto3Batch

WRITES = WRITE_OPERATIONS  # one definition of "a write", shared with the controller


class CallCounter:
    """Every Batch request of one adapter, with the time it was sent."""

    def __init__(self, api: Boto3Batch) -> None:
        self.calls: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        for client in (api.client, api.submit_client):
            client.meta.events.register("before-send.batch.*", self._count)

    def _count(self, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self.calls.append((time.perf_counter(), event_name.rsplit(".", 1)[-1]))

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    @property
    def writes(self) -> list[str]:
        return [name for _, name in self.calls if name in WRITES]

    @property
    def reads(self) -> list[str]:
        return [name for _, name in self.calls if name not in WRITES]

    def first(self, operation: str, after: float = 0.0) -> float | None:
        """perf_counter time of the first ``operation`` sent after ``after``."""
        with self._lock:
            return next((t for t, name in self.calls if name == operation and t >= after), None)

    def count(self, operation: str, after: float = 0.0) -> int:
        """How many ``operation`` requests were sent after ``after`` (perf_counter time)."""
        with self._lock:
            return sum(1 for t, name in self.calls if name == operation and t >= after)
