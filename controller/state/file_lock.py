"""The embedded store's writer lock: an exclusive OS lock on ``<ledger>.lock``.

Two ``reconcile`` runs from overlapping cron entries, or a manual ``reconcile`` while
the daemon runs, would otherwise both plan from the same ledger and both submit. The
lock is ``flock(LOCK_EX)`` on a file beside the ledger, held for a writer's whole pass;
the kernel drops it when the process dies (SIGKILL included), so a crash never leaves
a stale lock. The holder writes who it is (host, pid, since, command) into the file,
so a writer that has to wait can say whom it waits for.

Used by :class:`controller.state.sqlite.SqliteLedger.writer_lock`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO

from controller.model.records import Fence, Holder
from controller.state.ledger import WriterBusy

# How often a waiting writer tries again.
POLL_SECONDS = 0.2


class FileWriterLock:
    """:class:`controller.state.ledger.WriterLock` for one SQLite ledger file."""

    def __init__(self, ledger_path: Path, purpose: str) -> None:
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self.ledger_path = ledger_path
        self.purpose = purpose
        self._file: IO[str] | None = None

    def acquire(self, wait: float = 0.0) -> Fence | None:
        if self._file is not None:
            return None  # already ours (re-entrant within one holder)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the whole pass
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self.holder()
                    handle.close()
                    raise WriterBusy(
                        _busy_message(self.ledger_path, holder, wait), holder
                    ) from None
                time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())) or 0.01)
        me = Holder(socket.gethostname(), os.getpid(), time.time(), self.purpose)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(dataclasses.asdict(me)))
        handle.flush()
        self._file = handle
        return None

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()

    def holder(self) -> Holder | None:
        try:
            raw = self.path.read_text()
            fields = json.loads(raw) if raw.strip() else None
        except (OSError, ValueError):
            return None
        if not isinstance(fields, dict):
            return None
        try:
            return Holder(
                host=str(fields["host"]),
                pid=int(fields["pid"]),
                since=float(fields["since"]),
                purpose=str(fields.get("purpose", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _busy_message(ledger: Path, holder: Holder | None, wait: float) -> str:
    who = holder.describe() if holder is not None else "another process"
    waited = f" after waiting {wait:g}s" if wait > 0 else ""
    return (
        f"{ledger}: another writer holds the ledger ({who}){waited}. Only one process may "
        "submit at a time; wait for it to finish or pass --wait DURATION."
    )
