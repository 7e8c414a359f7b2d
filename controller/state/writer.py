"""Hold a ledger's writer lock for the length of a ``with`` block.

Every command that writes AWS or the ledger (``reconcile``, ``run``'s passes,
``ledger rebuild``, ``ledger prune``, the demo) runs inside :func:`writing`; read-only
commands (``plan``, ``status``, ``history``) never take it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from controller.model.records import Fence
from controller.state.ledger import Ledger


@contextmanager
def writing(ledger: Ledger, purpose: str, wait: float = 0.0) -> Iterator[Fence | None]:
    """The fence to write with, while this process is the store's only writer.

    Raises :class:`~controller.state.ledger.WriterBusy` (naming the holder) when another
    writer still holds the lock after ``wait`` seconds.
    """
    lock = ledger.writer_lock(purpose)
    fence = lock.acquire(wait)
    try:
        yield fence
    finally:
        lock.release()
