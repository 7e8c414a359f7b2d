"""Fixtures for leader-election tests: moto's DynamoDB (same server as Batch); the
hand-moved ``Clock`` lives in tests/support/clock.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller.aws.lease import Lease
from controller.demo import backend as demo_backend
from tests.support.clock import Clock

__all__ = ["TABLE", "Clock"]

TABLE = "batch-gitops-lease"


@pytest.fixture
def dynamodb(moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A DynamoDB client on the moto server, with the lease table created."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint)
    client = moto.client("dynamodb")
    Lease(TABLE, "x", "setup", 1, client=client).create_table()
    yield client


@pytest.fixture
def make_lease(dynamodb: Any) -> Any:
    """``make_lease(holder, seconds=10, clock=None)`` -> a Lease on the test table."""

    def make(holder: str, seconds: float = 10.0, clock: Clock | None = None) -> Lease:
        return Lease(TABLE, "main", holder, seconds, client=dynamodb, clock=clock or Clock())

    return make
