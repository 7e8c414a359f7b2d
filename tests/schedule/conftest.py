"""The schedule tests run on both ledger stores: a SQLite file and a DynamoDB table."""

from __future__ import annotations

import pytest

from tests.conftest import Controller


@pytest.fixture
def controller(store_controller: Controller) -> Controller:
    """The shared `controller`, once per store (tests.conftest.store_controller)."""
    return store_controller
