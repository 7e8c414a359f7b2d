"""Which store a ``--state`` value names, opened as a :class:`~controller.state.ledger.Ledger`.

Today a path is an embedded SQLite file (:mod:`controller.state.sqlite`).
"""

from __future__ import annotations

from pathlib import Path

from controller.state.ledger import Ledger
from controller.state.sqlite import SqliteLedger


def open_ledger(location: Path | str) -> Ledger:
    """The ledger at ``location``. Raises :class:`~controller.state.ledger.LedgerError`."""
    return SqliteLedger(location)
