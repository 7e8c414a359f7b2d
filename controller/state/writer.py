"""Hold a ledger's writer lock for the length of a ``with`` block.

Every command that writes AWS or the ledger (``reconcile``, ``run``'s passes,
``ledger rebuild``, ``ledger prune``, the demo) runs inside :func:`writing`; read-only
commands (``plan``, ``status``, ``history``) never take it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from controller.aws.batch import BatchApi, Boto3Batch
from controller.aws.lease import guard_writes
from controller.model.records import Fence
from controller.state.lease_lock import LeaseWriterLock
from controller.state.ledger import Ledger


@contextmanager
def writing(
    ledger: Ledger, purpose: str, wait: float = 0.0, api: BatchApi | None = None
) -> Iterator[Fence | None]:
    """The fence to write with, while this process is the store's only writer.

    Raises :class:`~controller.state.ledger.WriterBusy` (naming the holder) when another
    writer still holds the lock after ``wait`` seconds. ``api``: when the lock is the
    shared store's lease, every Batch write of this adapter re-checks it just before it
    is sent (:func:`controller.aws.lease.guard_writes`), as the daemon's do.
    """
    lock = ledger.writer_lock(purpose)
    fence = lock.acquire(wait)
    if isinstance(lock, LeaseWriterLock) and isinstance(api, Boto3Batch):
        guard_writes(api, lock.lease)
    try:
        yield fence
    finally:
        lock.release()
