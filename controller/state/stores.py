"""Which store a ``--state`` value names, opened as a :class:`~controller.state.ledger.Ledger`.

A path is an embedded SQLite file (:mod:`controller.state.sqlite`), one process's
ledger; ``dynamodb://TABLE`` is the shared ledger every replica uses
(:mod:`controller.state.dynamodb`). Replicas (a lease) need the shared one:
:func:`leader_lease` refuses a lease next to a file.
"""

from __future__ import annotations

from pathlib import Path

from controller.aws.lease import Lease
from controller.settings import Settings
from controller.state.dynamodb import DynamoLedger
from controller.state.dynamodb_layout import SCHEME, parse_location
from controller.state.ledger import Ledger, LedgerError
from controller.state.sqlite import SqliteLedger

REPLICAS_NEED_A_SHARED_LEDGER = (
    "replicas need a shared ledger: --state dynamodb://TABLE (BATCH_GITOPS_LEASE_TABLE is "
    "set, but {state} is a file of this replica's own)"
)


def is_shared(location: Path | str) -> bool:
    """True for a store URL (``dynamodb://TABLE``), False for a ledger file."""
    return str(location).startswith(SCHEME)


def open_ledger(location: Path | str, settings: Settings | None = None) -> Ledger:
    """The ledger at ``location``. Raises :class:`~controller.state.ledger.LedgerError`.

    ``settings`` gives the shared store its lease (name, seconds, a separate table).
    """
    if not is_shared(location):
        return SqliteLedger(location)
    try:
        table = parse_location(str(location))
    except ValueError as exc:
        raise LedgerError(str(exc)) from exc
    lease = settings or Settings()
    ledger = DynamoLedger(
        table,
        lease_table=lease.lease_table,
        lease_name=lease.lease_name,
        lease_seconds=lease.lease_seconds,
    )
    ledger.check()
    return ledger


def leader_lease(ledger: Ledger, settings: Settings) -> Lease | None:
    """The lease this daemon replica leads with: the shared store's, or None (one replica
    on a ledger file). A lease next to a ledger file is refused (LedgerError): each
    replica would keep its own history, and a new leader would not know the old one's."""
    if isinstance(ledger, DynamoLedger):
        return ledger.leader_lease(settings.holder_id, purpose="run")
    if settings.lease_table:
        raise LedgerError(REPLICAS_NEED_A_SHARED_LEDGER.format(state=ledger.location))
    return None
