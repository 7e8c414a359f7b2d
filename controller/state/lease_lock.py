"""The shared store's writer lock: the DynamoDB lease (:mod:`controller.aws.lease`).

Every command that writes AWS or the shared ledger (``reconcile``, ``ledger rebuild``,
``ledger prune``, ``ledger migrate``) takes the same lease the daemon replicas elect
their leader with, so a manual ``reconcile`` next to running replicas waits for it
(``--wait``) or exits 1 naming the holder (host, pid, since: written into the lease
item by its holder). While held, a background thread renews it every
``lease_seconds / 4`` (a pass can last minutes); the fence it returns is checked by the
ledger with every claim (:class:`controller.model.records.Fence`).

A holder that died without releasing is replaced only after a waiter has watched its
lease unchanged for ``lease_seconds`` of its own clock: ``--wait`` must be at least
that long to take over from a crashed writer.

Used by :meth:`controller.state.dynamodb.DynamoLedger.writer_lock`; the daemon holds
its lease through :class:`controller.aws.lease.LeaseKeeper` instead (it keeps
leadership across passes).
"""

from __future__ import annotations

import time

from controller.aws.lease import Lease, LeaseError, LeaseKeeper
from controller.model.records import Fence, Holder
from controller.state.ledger import LedgerError, WriterBusy


class LeaseWriterLock:
    """:class:`controller.state.ledger.WriterLock` on a DynamoDB lease item."""

    def __init__(self, lease: Lease, location: str) -> None:
        self.lease = lease
        self.location = location
        self._keeper: LeaseKeeper | None = None

    def acquire(self, wait: float = 0.0) -> Fence | None:
        if self._keeper is not None:
            return self.lease.fence()  # already ours (re-entrant within one holder)
        deadline = time.monotonic() + max(0.0, wait)
        poll = min(1.0, self.lease.lease_seconds / 4)
        while True:
            try:
                held = self.lease.try_acquire()
            except LeaseError as exc:
                raise LedgerError(f"{self.location}: {exc}") from exc
            if held:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                holder = self.lease.holder_info()
                raise WriterBusy(self._busy_message(holder, wait), holder)
            time.sleep(min(poll, left))
        self._keeper = LeaseKeeper(self.lease)
        self._keeper.start()
        return self.lease.fence()

    def release(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is None:
            return
        keeper.stop()
        self.lease.release()

    def holder(self) -> Holder | None:
        try:
            self.lease.read()
        except Exception:  # only for a message: the caller reports the busy lock
            return None
        return self.lease.holder_info()

    def _busy_message(self, holder: Holder | None, wait: float) -> str:
        who = holder.describe() if holder is not None else "another process"
        waited = f" after waiting {wait:g}s" if wait > 0 else ""
        return (
            f"{self.location}: another writer holds the ledger's lease "
            f"{self.lease.name!r} ({who}){waited}. Only one process may write at a time: "
            "stop it (the daemon replicas hold it while they run), or pass --wait DURATION "
            f"(a writer that died is replaced after {self.lease.lease_seconds:g}s)."
        )
