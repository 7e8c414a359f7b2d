"""A clock the test moves by hand: time is our own boundary (the lease, progress)."""

from __future__ import annotations


class Clock:
    """A monotonic clock for code that takes ``clock=``; ``advance`` moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
