"""An endpoint that throttles like AWS Batch: token buckets per operation in front of moto.

AWS Batch limits SubmitJob to 50 requests/s per account (a fixed quota) and throttles
its other APIs too, answering HTTP 429 ``TooManyRequestsException``. moto never
throttles. This endpoint is the fault proxy of the tests
(``tests/support/fault_proxy.py``: it forwards to moto, answers 429 exactly as the
tests' throttle fault does and records every request) with one rule: a token bucket
per operation, refilled at the operation's rate; a request that finds its bucket
empty is answered 429 and never reaches moto (AWS did not act on it).

AWS does not document the burst its buckets allow; these hold one second's worth
(``burst_seconds``). "Sharing the account" is the same bucket at the rate the other
tools leave over (the issue's 25/s).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.support.fault_proxy import Fault, FaultProxy

# AWS's documented SubmitJob quota; the other Batch APIs are throttled at an
# undocumented rate, modelled at the same one.
ACCOUNT_RATE = 50.0


@dataclass
class TokenBucket:
    rate: float
    capacity: float
    tokens: float = field(init=False)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class AccountBuckets:
    """A fault-proxy rule: ``throttle`` when the operation's bucket is empty."""

    def __init__(
        self,
        rates: dict[str, float] | None = None,
        *,
        default_rate: float = ACCOUNT_RATE,
        burst_seconds: float = 1.0,
    ) -> None:
        self.rates = dict(rates or {})
        self.default_rate = default_rate
        self.burst_seconds = burst_seconds
        self.buckets: dict[str, TokenBucket] = {}
        self.lock = threading.Lock()

    def __call__(self, operation: str, index: int) -> Fault | None:
        with self.lock:
            bucket = self.buckets.get(operation)
            if bucket is None:
                rate = self.rates.get(operation, self.default_rate)
                bucket = TokenBucket(rate, max(1.0, rate * self.burst_seconds))
                self.buckets[operation] = bucket
            return None if bucket.take(time.monotonic()) else "throttle"


def start(
    upstream: str, *, submit_rate: float = ACCOUNT_RATE, burst_seconds: float = 1.0
) -> FaultProxy:
    """A running throttling endpoint in front of ``upstream`` (moto's URL)."""
    proxy = FaultProxy(upstream)
    proxy.rule = AccountBuckets({"SubmitJob": submit_rate}, burst_seconds=burst_seconds)
    return proxy.start()
