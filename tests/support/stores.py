"""The ledger's two stores, as tests get them: a SQLite file in ``tmp_path`` or a new
DynamoDB table on the moto server (DynamoDB over HTTP, the same server as Batch).

The ``store_state``, ``ledger`` and ``store_controller`` fixtures (tests/conftest.py) run
a test once per store.
"""

from __future__ import annotations

import pytest

from controller.demo import backend as demo_backend
from controller.state.dynamodb import DynamoLedger

STORES = ["sqlite", "dynamodb"]
LEDGER_TABLE = "batch-gitops-ledger"


def dynamodb_ledger_location(
    moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch, table: str = LEDGER_TABLE
) -> str:
    """A new, empty ledger table on the moto server; its ``--state``."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint)
    DynamoLedger(table).create_table(point_in_time_recovery=False)
    return f"dynamodb://{table}"
