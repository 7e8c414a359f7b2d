"""Copy a whole ledger from one store to another: ``ledger migrate`` and DynamoDB backups.

The stores exchange *rows*: one ``(table, fields)`` pair per record, with the SQLite
schema's table and column names (``jobs``, ``definitions``, ``schedules``,
``schedule_ticks``, ``actions``, ``passes``, ``meta``) as the neutral format. Each
store module turns its own records into rows (``export_rows``), writes rows as its own
records (``import_rows``) and counts its records by table (``row_counts``); the store's
private bookkeeping (SQLite's ``schema_version``, DynamoDB's ``#`` meta, HEAD and lease
items) is never a row.

Used by ``batch-gitops ledger migrate`` (:mod:`controller.cli.ledger`) and by
:meth:`controller.state.dynamodb.DynamoLedger.backup` (an export to a SQLite file).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from controller.state.ledger import LedgerError

# The order rows are exported in (runs before ticks: a tick's state depends on its run).
TABLES = ("meta", "jobs", "definitions", "schedules", "schedule_ticks", "actions", "passes")

Row = tuple[str, dict[str, Any]]


class Portable(Protocol):
    """A store whose records can be copied (every store module implements it)."""

    @property
    def location(self) -> str: ...

    def is_empty(self) -> bool: ...

    def export_rows(self) -> Iterator[Row]: ...

    def import_rows(self, rows: Iterable[Row]) -> None: ...

    def row_counts(self) -> dict[str, int]: ...


class CopyMismatch(LedgerError):
    """The target does not hold what the source held after a copy."""


def copy_ledger(source: Portable, target: Portable) -> dict[str, int]:
    """Every record of ``source`` into the empty ``target``; the counts per table, verified.

    Refuses a target that holds records (two histories must never mix). Raises
    :class:`CopyMismatch` when the target's counts differ from the rows copied.
    """
    if not target.is_empty() or any(target.row_counts().values()):
        raise LedgerError(
            f"{target.location} already holds records; copy only into a new, empty ledger"
        )
    copied = dict.fromkeys(TABLES, 0)

    def counted(rows: Iterable[Row]) -> Iterator[Row]:
        for table, fields in rows:
            copied[table] += 1
            yield table, fields

    target.import_rows(counted(source.export_rows()))
    found = target.row_counts()
    wrong = {t: (copied[t], found.get(t, 0)) for t in TABLES if copied[t] != found.get(t, 0)}
    if wrong:
        detail = ", ".join(f"{t}: copied {a}, found {b}" for t, (a, b) in wrong.items())
        raise CopyMismatch(f"{target.location}: the copy is incomplete ({detail})")
    return copied
