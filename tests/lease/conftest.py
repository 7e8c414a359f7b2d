"""Fixtures for leader-election tests: moto's DynamoDB (same server as Batch), a clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller.aws.lease import Lease
from controller.demo import backend as demo_backend

TABLE = "batch-gitops-lease"


class Clock:
    """A monotonic clock the test moves by hand (time is our own boundary)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def dynamodb(moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A DynamoDB client on the moto server, with the lease table created."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint)
    client = moto.client("dynamodb")
    Lease(TABLE, "x", "setup", 1, client=client).create_table()
    yield client


@pytest.fixture
def make_lease(dynamodb: Any) -> Any:
    def make(holder: str, seconds: float = 10.0, clock: Clock | None = None) -> Lease:
        return Lease(TABLE, "main", holder, seconds, client=dynamodb, clock=clock or Clock())

    return make
