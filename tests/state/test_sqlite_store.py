"""The embedded SQLite ledger: schema migrations in place, an online backup, the writer
lock (one writer per file, named when busy, dropped when its process dies) and claims
(of two writers that planned from the same state, only one records an intent)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from controller.model.records import Provenance, StatusUpdate
from controller.state.ledger import ClaimConflict, LedgerError, WriterBusy
from controller.state.sqlite import SCHEMA_VERSION, SqliteLedger
from controller.state.writer import writing

V1_DUMP = Path(__file__).resolve().parents[1] / "testdata" / "ledger-v1.sql"
HEAD = Provenance("b" * 40, "Ada <ada@example.com>", 1.0)


def v1_ledger(path: Path) -> Path:
    """A ledger file as batch-gitops 0.1.0 wrote it (schema 1, no user_version)."""
    db = sqlite3.connect(path)
    db.executescript(V1_DUMP.read_text())
    db.close()
    return path


def intent(ledger: SqliteLedger, token: str, name: str = "alpha", **kwargs: object) -> None:
    ledger.record_intent(
        token=token,
        queue="test-queue",
        name=name,
        manifest=f"jobs/{name}.json",
        spec_hash="h",
        prune=True,
        provenance=HEAD,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_schema_1_ledger_is_migrated_in_place_keeping_every_record(tmp_path: Path) -> None:
    """Opening a 0.1.0 ledger upgrades it to the current schema (PRAGMA user_version), keeps
    its runs, definitions, audit rows and meta, adds the new columns with their defaults,
    and leaves a copy of the old file beside it (<ledger>.v1.bak)."""
    path = v1_ledger(tmp_path / "ledger.sqlite")
    ledger = SqliteLedger(path)
    version = ledger.db.execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 2
    runs = {r.name: r for r in ledger.jobs()}
    assert set(runs) == {"alpha", "beta"}
    assert runs["alpha"].status == "RUNNING" and runs["alpha"].missing_since == 0.0
    assert runs["beta"].job_id == "job-2" and runs["beta"].seen_at == 0.0
    assert list(ledger.active_definitions()) == ["worker"]
    assert [a["name"] for a in ledger.actions()] == ["alpha"]
    assert ledger.get_meta("last_applied_revision") == "a" * 40
    ledger.update_statuses([StatusUpdate("job-1", seen=False)], now=50.0)
    assert ledger.job_by_id("job-1").missing_since == 50.0  # type: ignore[union-attr]
    ledger.close()
    backup = SqliteLedger(tmp_path / "ledger.sqlite.v1.bak")  # itself migrated on open
    assert {r.name for r in backup.jobs()} == {"alpha", "beta"}
    reopened = SqliteLedger(path)  # a second open migrates nothing more
    assert len(reopened.jobs()) == 2
    assert not (tmp_path / "ledger.sqlite.v2.bak").exists()


def test_a_ledger_from_a_newer_controller_is_refused(tmp_path: Path) -> None:
    """A file whose schema is newer than this controller's is not opened: the message says
    to upgrade batch-gitops (never a silent downgrade)."""
    path = tmp_path / "ledger.sqlite"
    SqliteLedger(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(LedgerError, match=r"newer than this controller.*upgrade batch-gitops"):
        SqliteLedger(path)


def test_backup_is_consistent_while_another_connection_writes(tmp_path: Path) -> None:
    """`backup` copies every committed record, including those still in the WAL, while a
    writer keeps committing: the copy opens cleanly and holds a prefix of the writes."""
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    writer = SqliteLedger(tmp_path / "ledger.sqlite")
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        n = 0
        while not stop.is_set() and n < 2000:
            intent(writer, f"t{n}", name=f"job{n}")
            written.append(n)
            n += 1

    thread = threading.Thread(target=write)
    thread.start()
    deadline = time.monotonic() + 30
    while len(written) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    ledger.backup(tmp_path / "copy.sqlite")
    stop.set()
    thread.join(timeout=30)
    copy = SqliteLedger(tmp_path / "copy.sqlite")
    names = {r.name for r in copy.jobs()}
    assert len(names) >= 50
    assert names == {f"job{n}" for n in range(len(names))}  # a prefix: nothing torn
    plain = sqlite3.connect(tmp_path / "copy.sqlite")
    assert plain.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_second_writer_is_refused_naming_the_holder_and_can_wait(tmp_path: Path) -> None:
    """While one writer holds the lock, another gets WriterBusy naming host, pid and
    command; with a wait it gets the lock as soon as the first releases it."""
    path = tmp_path / "ledger.sqlite"
    first, second = SqliteLedger(path), SqliteLedger(path)
    holder = first.writer_lock("reconcile")
    holder.acquire()
    with pytest.raises(WriterBusy) as busy:
        second.writer_lock("run").acquire(wait=0.3)
    assert busy.value.holder is not None and busy.value.holder.pid == os.getpid()
    assert "`reconcile`" in str(busy.value) and f"pid {os.getpid()}" in str(busy.value)
    threading.Timer(0.5, holder.release).start()
    with writing(second, "run", wait=20):
        assert first.writer_lock("x").holder().purpose == "run"  # type: ignore[union-attr]


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-pass leaves no stale lock: the kernel drops it, and
    the next writer gets it at once."""
    path = tmp_path / "ledger.sqlite"
    SqliteLedger(path).close()
    script = textwrap.dedent(
        f"""
        import sys, time
        from controller.state.sqlite import SqliteLedger
        lock = SqliteLedger({str(path)!r}).writer_lock("reconcile")
        lock.acquire()
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(WriterBusy):
            SqliteLedger(path).writer_lock("run").acquire()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        with writing(SqliteLedger(path), "run", wait=10):
            pass
    finally:
        if child.poll() is None:
            child.kill()


def test_of_two_writers_planning_from_the_same_state_only_one_claims_the_key(
    tmp_path: Path,
) -> None:
    """Two ledgers on one file both saw key alpha without a run (replaces=None): the first
    intent wins, the second raises ClaimConflict and writes nothing; a claim that names
    the current run succeeds."""
    path = tmp_path / "ledger.sqlite"
    a, b = SqliteLedger(path), SqliteLedger(path)
    intent(a, "from-a", replaces=None)
    with pytest.raises(ClaimConflict):
        intent(b, "from-b", replaces=None)
    assert [r.token for r in a.jobs()] == ["from-a"]
    intent(b, "replaces-a", replaces="from-a")
    assert a.current_jobs()[("test-queue", "alpha")].token == "replaces-a"
