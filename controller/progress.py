"""Progress of long work, as log events: a pass applying thousands of actions, a ledger
rebuild scanning big queues.

A 5,000-job commit at AWS's 50 SubmitJob/s takes close to two minutes; without
this, the operator (or the CI log of ``batch-gitops reconcile``) sees nothing in
between. :class:`Progress` emits one event at most every ``interval`` seconds with
what is done, the rate and the time left, and says nothing for work that ends
sooner. Callers: :mod:`controller.engine.apply` (``apply_progress``) and
:mod:`controller.state.rebuild` (``rebuild_progress``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL = 10.0


@dataclass
class Progress:
    event: str
    total: int
    interval: float = DEFAULT_INTERVAL
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    _started: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._started = self._last = self.clock()

    def advance(self, count: int = 1, **context: Any) -> dict[str, Any] | None:
        """Count ``count`` more done; log (and return) a progress event if one is due."""
        self.done += count
        now = self.clock()
        if self.done >= self.total or now - self._last < self.interval:
            return None
        self._last = now
        elapsed = now - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        fields: dict[str, Any] = {
            "done": self.done,
            "total": self.total,
            "percent": round(100 * self.done / self.total, 1) if self.total else 100.0,
            "per_second": round(rate, 1),
            "eta_seconds": round((self.total - self.done) / rate) if rate > 0 else None,
            **context,
        }
        log.info(self.event, **fields)
        return fields
