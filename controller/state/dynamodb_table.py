r"""The shared ledger's DynamoDB calls: errors, paging, batching, transactions, the table.

Every call the shared ledger (:mod:`controller.state.dynamodb`) makes goes through
:class:`DynamoTable`: botocore's errors become one-line
:class:`~controller.state.ledger.LedgerError`\ s naming the table and what to do (a
failed condition is not an error: the methods say so in their result), Query and Scan
are paged with botocore's paginators, BatchGetItem/BatchWriteItem are chunked and their
unprocessed keys sent again (bounded). Each ``self.client.<operation>`` is spelled out:
``tests/security/test_iam_policy.py`` reads them to check ``deploy/iam-policy.json``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from controller.state import dynamodb_layout as layout
from controller.state.ledger import LedgerError

# Concurrent requests one ledger may have in flight (its status updates use threads).
POOL_SIZE = 16
# Errors the callers handle themselves (everything else: LedgerError).
_EXPECTED = {"ConditionalCheckFailedException", "TransactionCanceledException"}


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class DynamoTable:
    """One ledger table and the client that reaches it."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self.location = f"{layout.SCHEME}{table}"
        try:
            self.client = client or boto3.client(
                "dynamodb",
                config=botocore.config.Config(
                    connect_timeout=5,
                    read_timeout=10,
                    retries={"mode": "standard", "max_attempts": 5},
                    max_pool_connections=POOL_SIZE,
                ),
            )
        except botocore.exceptions.BotoCoreError as exc:  # e.g. NoRegionError
            raise LedgerError(
                f"{self.location}: cannot use DynamoDB ({exc}); set AWS_DEFAULT_REGION"
            ) from exc

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """botocore errors as one-line LedgerErrors (failed conditions pass through)."""
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            if code in _EXPECTED:
                raise
            if code == "ResourceNotFoundException":
                raise LedgerError(
                    f"{self.location}: no such table (or index); create it with "
                    f"`batch-gitops ledger create-table {self.location}`"
                ) from exc
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise LedgerError(
                    f"{self.location}: {what} was denied ({code}); the role needs the "
                    "DynamoDB actions of deploy/iam-policy.json on the table and its indexes"
                ) from exc
            raise LedgerError(f"{self.location}: {what} failed: {exc}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise LedgerError(f"{self.location}: {what} failed: {exc}") from exc

    def layout_mark(self) -> dict[str, Any] | None:
        """The ledger's layout mark (meta ``#layout``), read to check the table is one."""
        with self.errors("GetItem"):
            try:
                found: dict[str, Any] | None = self.client.get_item(
                    TableName=self.table,
                    Key=layout.key("META", layout.LAYOUT_META),
                    ConsistentRead=True,
                ).get("Item")
            except botocore.exceptions.ClientError as exc:
                if _code(exc) == "ValidationException":  # its keys are not pk/sk
                    raise LedgerError(
                        f"{self.location}: this table is not a batch-gitops ledger (its keys "
                        "differ); create one with `batch-gitops ledger create-table "
                        f"{layout.SCHEME}<new table>`"
                    ) from exc
                raise
        return found

    def create_table(self, *, point_in_time_recovery: bool = True) -> bool:
        """Create the table (idempotent); True if it was created now.

        An existing table must have this layout's keys and indexes (else LedgerError).
        Point-in-time recovery is AWS's own continuous backup (35 days).
        """
        definition = layout.table_definition(self.table)
        created = True
        with self.errors("CreateTable"):
            try:
                self.client.create_table(**definition)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) != "ResourceInUseException":
                    raise
                created = False
        with self.errors("DescribeTable"):
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
            )
            described = self.client.describe_table(TableName=self.table)["Table"]
        have = {
            index["IndexName"]: index["KeySchema"]
            for index in described.get("GlobalSecondaryIndexes", [])
        }
        want = {
            index["IndexName"]: index["KeySchema"] for index in definition["GlobalSecondaryIndexes"]
        }
        if described["KeySchema"] != definition["KeySchema"] or any(
            have.get(name) != schema for name, schema in want.items()
        ):
            raise LedgerError(
                f"{self.location}: the table exists with other keys or indexes than a "
                "batch-gitops ledger needs (docs/state.md); choose another table name"
            )
        if point_in_time_recovery:
            with self.errors("UpdateContinuousBackups"):
                self.client.update_continuous_backups(
                    TableName=self.table,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
        return created

    def query(
        self, index: str | None, condition: str, values: dict[str, Any], **extra: Any
    ) -> Iterator[dict[str, Any]]:
        """A Query's items, page after page (the table's own keys: strongly consistent)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            **extra,
        }
        if index is not None:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = True
        with self.errors("Query"):
            for page in self.client.get_paginator("query").paginate(**kwargs):
                yield from page.get("Items", [])

    def scan(self, **extra: Any) -> Iterator[dict[str, Any]]:
        """Every item (for whole-ledger exports and history dumps, never in a pass)."""
        with self.errors("Scan"):
            for page in self.client.get_paginator("scan").paginate(
                TableName=self.table, ConsistentRead=True, **extra
            ):
                yield from page.get("Items", [])

    def scan_type(self, kind: str) -> Iterator[dict[str, Any]]:
        return self.scan(
            FilterExpression="#type = :type",
            ExpressionAttributeNames={"#type": "type"},
            ExpressionAttributeValues={":type": {"S": kind}},
        )

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        with self.errors("GetItem"):
            found: dict[str, Any] | None = self.client.get_item(
                TableName=self.table, Key=key, ConsistentRead=True
            ).get("Item")
        return found

    def batch_get(
        self, keys: list[dict[str, Any]], *, consistent: bool = False
    ) -> list[dict[str, Any]]:
        """The items of ``keys`` (100 a call; unprocessed keys asked again, bounded)."""
        found: list[dict[str, Any]] = []
        unique = list({json.dumps(k, sort_keys=True): k for k in keys}.values())
        for start in range(0, len(unique), 100):
            pending: dict[str, Any] = {
                self.table: {"Keys": unique[start : start + 100], "ConsistentRead": consistent}
            }
            for attempt in range(10):
                with self.errors("BatchGetItem"):
                    reply = self.client.batch_get_item(RequestItems=pending)
                found += reply.get("Responses", {}).get(self.table, [])
                pending = reply.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            if pending:
                raise LedgerError(f"{self.location}: BatchGetItem left keys unread (throttled)")
        return found

    def batch_write(self, requests: list[dict[str, Any]]) -> None:
        """PutRequest/DeleteRequest items, 25 a call (unprocessed ones sent again, bounded)."""
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.table: requests[start : start + 25]}
            for attempt in range(10):
                with self.errors("BatchWriteItem"):
                    reply = self.client.batch_write_item(RequestItems=pending)
                pending = reply.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            if pending:
                raise LedgerError(f"{self.location}: BatchWriteItem left items unwritten")

    def update(
        self,
        key: dict[str, Any],
        expression: str,
        values: dict[str, Any] | None = None,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        returns: str = "NONE",
    ) -> dict[str, Any] | None:
        """One UpdateItem; None when ``condition`` did not hold (nothing written)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": key,
            "UpdateExpression": expression,
            "ReturnValues": returns,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if condition:
            kwargs["ConditionExpression"] = condition
        with self.errors("UpdateItem"):
            try:
                reply = self.client.update_item(**kwargs)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    return None
                raise
        attributes: dict[str, Any] = reply.get("Attributes", {})
        return attributes

    def put(self, typed: dict[str, Any], condition: str | None = None) -> bool:
        """One PutItem; False when ``condition`` did not hold (nothing written)."""
        kwargs: dict[str, Any] = {"TableName": self.table, "Item": typed}
        if condition:
            kwargs["ConditionExpression"] = condition
        with self.errors("PutItem"):
            try:
                self.client.put_item(**kwargs)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def transact(self, items: list[dict[str, Any]], token: str | None = None) -> list[str]:
        """One TransactWriteItems: [] when written, else the cancellation reason per item
        (``ConditionalCheckFailed``, ``TransactionConflict``, ``None``...)."""
        kwargs: dict[str, Any] = {"TransactItems": items}
        if token is not None:  # idempotent resends: a retry after a lost reply is no 2nd write
            kwargs["ClientRequestToken"] = hashlib.sha256(token.encode()).hexdigest()[:36]
        try:
            with self.errors("TransactWriteItems"):
                self.client.transact_write_items(**kwargs)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise LedgerError(f"{self.location}: TransactWriteItems failed: {exc}") from exc
            reasons = exc.response.get("CancellationReasons", [])
            return [str(reason.get("Code", "None")) for reason in reasons] or ["Unknown"]
        return []
