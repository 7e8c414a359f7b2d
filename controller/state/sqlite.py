"""The embedded ledger store: one SQLite file (the default ``--state``).

Implements :class:`controller.state.ledger.Ledger`; the only module that speaks SQL.

SQLite in WAL mode: a SIGKILL mid-write loses at most the transaction in
flight, never the file; an intent's commit is also fsynced (``synchronous=FULL``
for that transaction) so not even a power loss forgets a submission that may
have reached AWS. One connection, guarded by a lock, shared by the
submit threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.model.jobstatus import FINISHED_STATUSES
from controller.model.records import (
    DefinitionRecord,
    Fence,
    JobRecord,
    Provenance,
    ScheduleRow,
    ScheduleUpdate,
    StatusUpdate,
    TickRow,
)
from controller.state.file_lock import FileWriterLock
from controller.state.ledger import (
    ANY_RUN,
    WRITES_SENT_META,
    ClaimConflict,
    LedgerError,
    PruneResult,
    WriterLock,
)

# The schema this controller writes; ``PRAGMA user_version`` of the file. Each step of
# MIGRATIONS upgrades a file from the version before it, in place, in one transaction.
SCHEMA_VERSION = 2
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 2: jobs remember when AWS last returned them, and since when it has not.
    2: (
        "ALTER TABLE jobs ADD COLUMN seen_at REAL NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN missing_since REAL NOT NULL DEFAULT 0",
    ),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    token TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    revision TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    committed_at REAL NOT NULL DEFAULT 0,
    job_id TEXT,
    state TEXT NOT NULL,            -- intent | submitted | rejected | lost
    status TEXT,                    -- last AWS status seen
    status_reason TEXT,
    array_summary TEXT,
    prune INTEGER NOT NULL DEFAULT 1,
    is_current INTEGER NOT NULL DEFAULT 1,
    retired INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    seen_at REAL NOT NULL DEFAULT 0,        -- when AWS last returned it
    missing_since REAL NOT NULL DEFAULT 0   -- since when reads have not (0: visible)
);
CREATE INDEX IF NOT EXISTS jobs_current ON jobs (queue, name, is_current);
CREATE INDEX IF NOT EXISTS jobs_job_id ON jobs (job_id);
CREATE INDEX IF NOT EXISTS jobs_revision ON jobs (revision);
CREATE INDEX IF NOT EXISTS jobs_manifest ON jobs (manifest);
CREATE TABLE IF NOT EXISTS definitions (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    prune INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL,           -- ACTIVE | INACTIVE
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS definitions_name ON definitions (name, status);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pass_id TEXT NOT NULL,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    manifest TEXT NOT NULL DEFAULT '',
    revision TEXT NOT NULL DEFAULT '',
    author TEXT NOT NULL DEFAULT '',
    committed_at REAL NOT NULL DEFAULT 0,
    result TEXT NOT NULL,
    aws_id TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS actions_revision ON actions (revision);
CREATE INDEX IF NOT EXISTS actions_manifest ON actions (manifest);
CREATE INDEX IF NOT EXISTS actions_aws_id ON actions (aws_id);
CREATE TABLE IF NOT EXISTS passes (
    pass_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    revision TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS schedules (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    since REAL NOT NULL,            -- first seen (as now written): no earlier tick ever runs
    last_tick REAL,                 -- newest tick handled (run or skipped)
    active INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (queue, name)
);
CREATE TABLE IF NOT EXISTS schedule_ticks (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,             -- the template's jobName
    tick REAL NOT NULL,             -- UTC epoch seconds
    job_name TEXT NOT NULL,
    outcome TEXT NOT NULL,          -- run | skipped
    decided_at REAL NOT NULL,
    PRIMARY KEY (queue, name, tick)
);
CREATE INDEX IF NOT EXISTS schedule_ticks_job ON schedule_ticks (queue, job_name);
"""


class _DryRun(Exception):
    """Raised inside the transaction of a dry run to roll it back."""


class SqliteLedger:
    """:class:`controller.state.ledger.Ledger` in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: no fsync per commit (WAL stays consistent after a crash); intents
            # switch to FULL for their own commit (see record_intent).
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            self._upgrade()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"{self.path}: cannot open the ledger ({exc}). Move the file aside (keep it "
                f"for diagnosis) and run `batch-gitops ledger rebuild --state {self.path}` "
                "with the same --repo to recover it from the tags in AWS (--replace moves "
                "it aside for you)."
            ) from exc

    def _version(self) -> int:
        """The file's schema version (0: a new, empty file)."""
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version:
            return version
        # Before user_version was used (schema 1), the version lived in the meta table.
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _upgrade(self) -> None:
        """Create a new file at the newest schema, or migrate an older one in place.

        Before a migration the file is copied (SQLite's backup API) to
        ``<ledger>.v<old>.bak``: a downgrade, or a migration gone wrong, has a way back.
        """
        version = self._version()
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path}: ledger schema {version} is newer than this controller "
                f"({SCHEMA_VERSION}); upgrade batch-gitops"
            )
        if 0 < version < SCHEMA_VERSION:
            if str(self.path) != ":memory:":
                self.backup(self.path.with_name(f"{self.path.name}.v{version}.bak"))
            with self.transaction() as db:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS.get(step, ()):
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.db.executescript(SCHEMA)  # tables and indexes a migration did not create
        if version != SCHEMA_VERSION:
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    @property
    def location(self) -> str:
        return str(self.path)

    def writer_lock(self, purpose: str) -> WriterLock:
        """An OS lock on ``<ledger>.lock`` (see :mod:`controller.state.file_lock`)."""
        return FileWriterLock(self.path, purpose)

    def backup(self, destination: Path) -> None:
        """SQLite's online backup API: a consistent copy even while the daemon writes
        (a plain ``cp`` of a WAL-mode file can miss everything still in the WAL)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(str(destination))
        try:
            with self.lock:
                self.db.backup(target)
        finally:
            target.close()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # --- meta ---
    def get_meta(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # --- jobs ---
    def current_jobs(self) -> dict[tuple[str, str], JobRecord]:
        """The current run of every job key ever submitted (retired ones included)."""
        with self.lock:
            rows = self.db.execute("SELECT * FROM jobs WHERE is_current=1").fetchall()
        return {(row["queue"], row["name"]): _job(row) for row in rows}

    def job_status_counts(self) -> dict[tuple[str, str], int]:
        """``(queue, status) -> count`` of current, not retired runs (one indexed query,
        no records built: the jobs gauge needs only counts)."""
        with self.lock:
            rows = self.db.execute(
                "SELECT queue, status, COUNT(*) FROM jobs WHERE is_current=1 AND retired=0 "
                "AND status IS NOT NULL AND status != '' GROUP BY queue, status"
            ).fetchall()
        return {(str(row[0]), str(row[1])): int(row[2]) for row in rows}

    def jobs(self, *, include_retired: bool = True) -> list[JobRecord]:
        query = "SELECT * FROM jobs"
        if not include_retired:
            query += " WHERE retired=0"
        with self.lock:
            rows = self.db.execute(query + " ORDER BY created_at").fetchall()
        return [_job(row) for row in rows]

    def is_empty(self) -> bool:
        """No job, no definition, no write ever recorded: a new file (or a lost one)."""
        with self.lock:
            row = self.db.execute(
                "SELECT EXISTS(SELECT 1 FROM jobs) OR EXISTS(SELECT 1 FROM definitions) "
                "OR EXISTS(SELECT 1 FROM meta WHERE key=?)",
                (WRITES_SENT_META,),
            ).fetchone()
        return not row[0]

    def open_intents(self) -> list[JobRecord]:
        with self.lock:
            rows = self.db.execute("SELECT * FROM jobs WHERE state='intent'").fetchall()
        return [_job(row) for row in rows]

    def job_by_id(self, job_id: str) -> JobRecord | None:
        with self.lock:
            row = self.db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def jobs_matching(
        self, *, revision_prefix: str | None = None, manifest: str | None = None
    ) -> list[JobRecord]:
        """Runs (all of them, oldest first) from commits starting with ``revision_prefix``
        and/or of ``manifest``: the audit queries of ``controller.state.history``."""
        clauses, params = [], []
        if revision_prefix:
            # A range on the SHA instead of LIKE: SHAs are lowercase hex, and a range can use
            # an index where LIKE (case-insensitive in SQLite) cannot.
            clauses.append("revision >= ? AND revision < ?")
            params += [revision_prefix, revision_prefix + "g"]
        if manifest:
            clauses.append("manifest=?")
            params.append(manifest)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.lock:
            rows = self.db.execute(
                f"SELECT * FROM jobs{where} ORDER BY created_at", params
            ).fetchall()
        return [_job(row) for row in rows]

    def record_intent(
        self,
        *,
        token: str,
        queue: str,
        name: str,
        manifest: str,
        spec_hash: str,
        prune: bool,
        provenance: Provenance,
        replaces: str | None = ANY_RUN,
        fence: Fence | None = None,
    ) -> None:
        """Before SubmitJob: this run becomes the key's current one, if the current run
        is still the one the plan saw (``replaces``). ``fence`` needs no check here: the
        file's writer lock already excludes every other writer."""
        now = time.time()
        with self.lock:
            # fsync this commit (and the WAL before it) before SubmitJob may be sent.
            self.db.execute("PRAGMA synchronous=FULL")
            try:
                with self.transaction() as db:
                    if replaces != ANY_RUN:
                        row = db.execute(
                            "SELECT token FROM jobs WHERE queue=? AND name=? AND is_current=1",
                            (queue, name),
                        ).fetchone()
                        current = None if row is None else str(row[0])
                        if current != replaces:
                            raise ClaimConflict(
                                f"{queue}/{name}: another writer recorded a new run "
                                f"({current}) since this pass planned; not submitting"
                            )
                    db.execute(
                        "UPDATE jobs SET is_current=0, updated_at=? WHERE queue=? AND name=? "
                        "AND is_current=1",
                        (now, queue, name),
                    )
                    db.execute(
                        "INSERT INTO jobs(token, queue, name, manifest, spec_hash, revision, "
                        "author, committed_at, state, prune, is_current, created_at, updated_at) "
                        "VALUES(?,?,?,?,?,?,?,?, 'intent', ?, 1, ?, ?)",
                        (
                            token,
                            queue,
                            name,
                            manifest,
                            spec_hash,
                            provenance.revision,
                            provenance.author,
                            provenance.committed_at,
                            int(prune),
                            now,
                            now,
                        ),
                    )
            finally:
                self.db.execute("PRAGMA synchronous=NORMAL")

    def record_submitted(self, token: str, job_id: str, status: str = "SUBMITTED") -> None:
        with self.lock:
            self.db.execute(
                "UPDATE jobs SET state='submitted', job_id=?, status=?, updated_at=? WHERE token=?",
                (job_id, status, time.time(), token),
            )

    def record_outcome(self, token: str, state: str, message: str) -> None:
        """Close an intent that did not make a job: ``rejected`` or ``lost``."""
        with self.lock:
            self.db.execute(
                "UPDATE jobs SET state=?, message=?, updated_at=? WHERE token=?",
                (state, message, time.time(), token),
            )

    def update_statuses(self, updates: list[StatusUpdate], now: float) -> None:
        """One read of AWS in one transaction: fresh statuses for the runs it returned,
        ``missing_since`` (first miss kept) for those it did not."""
        if not updates:
            return
        seen = [u for u in updates if u.seen]
        missing = [u.job_id for u in updates if not u.seen]
        with self.transaction() as db:
            db.executemany(
                "UPDATE jobs SET status=?, status_reason=?, array_summary=?, updated_at=?, "
                "seen_at=?, missing_since=0 WHERE job_id=?",
                [(u.status, u.reason, u.array_summary, now, now, u.job_id) for u in seen],
            )
            db.executemany(
                "UPDATE jobs SET missing_since=?, updated_at=? WHERE job_id=? AND missing_since=0",
                [(now, now, job_id) for job_id in missing],
            )

    def record_status(self, job_id: str, status: str, reason: str | None = None) -> None:
        """One job's status as seen right after we acted on it (array summary untouched)."""
        now = time.time()
        with self.lock:
            self.db.execute(
                "UPDATE jobs SET status=?, status_reason=COALESCE(?, status_reason), "
                "updated_at=?, seen_at=?, missing_since=0 WHERE job_id=?",
                (status, reason, now, now, job_id),
            )

    def set_retired(self, queue: str, name: str, retired: bool) -> None:
        """Mark a key's current run as belonging to a removed manifest (or not any more).

        The run stays current: re-adding the same manifest does not run it again.
        """
        with self.lock:
            self.db.execute(
                "UPDATE jobs SET retired=?, updated_at=? WHERE queue=? AND name=? AND is_current=1",
                (int(retired), time.time(), queue, name),
            )

    def set_manifest(self, queue: str, name: str, manifest: str) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE jobs SET manifest=?, updated_at=? WHERE queue=? AND name=? "
                "AND is_current=1",
                (manifest, time.time(), queue, name),
            )

    # --- definitions ---
    def active_definitions(self) -> dict[str, list[DefinitionRecord]]:
        """ACTIVE revisions we registered, by name, oldest first."""
        with self.lock:
            rows = self.db.execute(
                "SELECT * FROM definitions WHERE status='ACTIVE' ORDER BY name, revision"
            ).fetchall()
        result: dict[str, list[DefinitionRecord]] = {}
        for row in rows:
            result.setdefault(row["name"], []).append(_definition(row))
        return result

    def record_definition(
        self,
        *,
        arn: str,
        name: str,
        revision: int,
        manifest: str,
        spec_hash: str,
        prune: bool,
        provenance: Provenance,
    ) -> None:
        now = time.time()
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO definitions(arn, name, revision, manifest, spec_hash, "
                "commit_sha, author, prune, status, created_at, updated_at) "
                "VALUES(?,?,?,?,?,?,?,?, 'ACTIVE', ?, ?)",
                (
                    arn,
                    name,
                    revision,
                    manifest,
                    spec_hash,
                    provenance.revision,
                    provenance.author,
                    int(prune),
                    now,
                    now,
                ),
            )

    def record_deregistered(self, arn: str) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE definitions SET status='INACTIVE', updated_at=? WHERE arn=?",
                (time.time(), arn),
            )

    # --- audit ---
    def record_action(
        self,
        *,
        pass_id: str,
        action: str,
        kind: str,
        name: str,
        queue: str,
        manifest: str,
        provenance: Provenance,
        result: str,
        aws_id: str,
        message: str,
    ) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO actions(pass_id, at, action, kind, queue, name, manifest, revision,"
                " author, committed_at, result, aws_id, message) "
                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    pass_id,
                    time.time(),
                    action,
                    kind,
                    queue,
                    name,
                    manifest,
                    provenance.revision,
                    provenance.author,
                    provenance.committed_at,
                    result,
                    aws_id,
                    message,
                ),
            )

    def actions(
        self,
        *,
        revision: str | None = None,
        manifest: str | None = None,
        aws_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if revision:
            clauses.append("revision LIKE ?")
            params.append(revision + "%")
        if manifest:
            clauses.append("manifest=?")
            params.append(manifest)
        if aws_id:
            clauses.append("aws_id=?")
            params.append(aws_id)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.lock:
            rows = self.db.execute(
                f"SELECT * FROM actions{where} ORDER BY id LIMIT ?", (*params, limit)
            ).fetchall()
        return [dict(row) for row in rows]

    def start_pass(self, pass_id: str) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO passes(pass_id, started_at) VALUES(?, ?)", (pass_id, time.time())
            )

    def finish_pass(
        self, pass_id: str, revision: str, result: str, summary: dict[str, Any]
    ) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE passes SET finished_at=?, revision=?, result=?, summary=? WHERE pass_id=?",
                (time.time(), revision, result, json.dumps(summary), pass_id),
            )

    # --- schedules ---
    def schedules(self) -> dict[tuple[str, str], ScheduleRow]:
        with self.lock:
            rows = self.db.execute("SELECT * FROM schedules").fetchall()
        return {
            (r["queue"], r["name"]): ScheduleRow(**{**dict(r), "active": bool(r["active"])})
            for r in rows
        }

    def ticks(self, queue: str | None = None, name: str | None = None) -> list[TickRow]:
        query = "SELECT * FROM schedule_ticks"
        params: tuple[str, ...] = ()
        if queue is not None and name is not None:
            query, params = query + " WHERE queue=? AND name=?", (queue, name)
        with self.lock:
            rows = self.db.execute(query + " ORDER BY tick", params).fetchall()
        return [TickRow(**dict(r)) for r in rows]

    def open_ticks(self) -> dict[tuple[str, str], list[float]]:
        """Run ticks whose run is not over (no record yet, intent, active, rejected).

        Finished runs drop out of the desired state: the planner only retires them
        (bookkeeping), so they can never be re-run or stopped, and the desired state
        stays as small as the number of runs in flight.
        """
        marks = ",".join("?" * len(FINISHED_STATUSES))
        with self.lock:
            rows = self.db.execute(
                "SELECT t.queue, t.name, t.tick FROM schedule_ticks t LEFT JOIN jobs j "
                "ON j.queue=t.queue AND j.name=t.job_name AND j.is_current=1 "
                "WHERE t.outcome='run' AND (j.token IS NULL OR "
                f"NOT (j.state='submitted' AND j.status IN ({marks}))) ORDER BY t.tick",
                FINISHED_STATUSES,
            ).fetchall()
        found: dict[tuple[str, str], list[float]] = {}
        for row in rows:
            found.setdefault((row["queue"], row["name"]), []).append(float(row["tick"]))
        return found

    def record_schedules(
        self, updates: list[ScheduleUpdate], removed: list[tuple[str, str]]
    ) -> None:
        with self.transaction() as db:  # one transaction per pass, however many schedules
            for update in updates:
                db.execute(
                    "INSERT INTO schedules(queue, name, manifest, cron, timezone, since, "
                    "last_tick, active) VALUES(?,?,?,?,?,?,?,1) ON CONFLICT(queue, name) DO "
                    "UPDATE SET manifest=excluded.manifest, cron=excluded.cron, "
                    "timezone=excluded.timezone, since=excluded.since, "
                    "last_tick=COALESCE(excluded.last_tick, schedules.last_tick), active=1",
                    (
                        update.queue,
                        update.name,
                        update.manifest,
                        update.cron,
                        update.timezone,
                        update.since,
                        update.last_tick,
                    ),
                )
                tick = update.tick
                if tick is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO schedule_ticks(queue, name, tick, job_name, "
                        "outcome, decided_at) VALUES(?,?,?,?,?,?)",
                        (
                            tick.queue,
                            tick.name,
                            tick.tick,
                            tick.job_name,
                            tick.outcome,
                            tick.decided_at,
                        ),
                    )
            db.executemany("UPDATE schedules SET active=0 WHERE queue=? AND name=?", removed)

    # --- retention ---
    def prune(self, cutoff: float, *, dry_run: bool = False) -> PruneResult:
        result = PruneResult(dry_run=dry_run)
        try:
            with self.transaction() as db:
                # Ticks first: a tick leaves the desired state with its row, so its run may
                # go too.
                ticks = db.execute(
                    "SELECT t.queue, t.name, t.tick, t.job_name FROM schedule_ticks t "
                    "LEFT JOIN jobs j ON j.queue=t.queue AND j.name=t.job_name "
                    "AND j.is_current=1 WHERE t.tick < ? AND t.decided_at < ? AND "
                    f"(t.outcome='skipped' OR (j.token IS NOT NULL AND {_over('j')} "
                    "AND j.updated_at < ?))",
                    (cutoff, cutoff, cutoff),
                ).fetchall()
                tick_jobs = {(row["queue"], row["job_name"]) for row in ticks if row["job_name"]}
                result.ticks = len(ticks)
                db.executemany(
                    "DELETE FROM schedule_ticks WHERE queue=? AND name=? AND tick=?",
                    [(row["queue"], row["name"], row["tick"]) for row in ticks],
                )
                doomed = db.execute(
                    f"SELECT token, queue, name, is_current, retired FROM jobs WHERE {_over()} "
                    "AND updated_at < ?",
                    (cutoff,),
                ).fetchall()
                tokens = [
                    row["token"]
                    for row in doomed
                    if not row["is_current"]
                    or row["retired"]
                    or (row["queue"], row["name"]) in tick_jobs
                ]
                result.jobs = len(tokens)
                db.executemany("DELETE FROM jobs WHERE token=?", [(token,) for token in tokens])
                result.definitions = db.execute(
                    "DELETE FROM definitions WHERE status='INACTIVE' AND updated_at < ?",
                    (cutoff,),
                ).rowcount
                result.actions = db.execute("DELETE FROM actions WHERE at < ?", (cutoff,)).rowcount
                result.passes = db.execute(
                    "DELETE FROM passes WHERE finished_at IS NOT NULL AND finished_at < ?",
                    (cutoff,),
                ).rowcount
                if dry_run:
                    # Same statements, same counts, nothing kept: leaving the transaction by
                    # an exception rolls it back.
                    raise _DryRun
        except _DryRun:
            pass
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: pruning failed: {exc}") from exc
        return result

    # --- copying (controller.state.copy: ledger migrate, DynamoDB backups) ---
    def export_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every record as ``(table, columns)``, in :data:`controller.state.copy.TABLES`
        order, from one read transaction (a consistent view while a writer runs)."""
        with self.lock:
            self.db.execute("BEGIN")
            try:
                for table in _COPIED:
                    order = _COPY_ORDER.get(table, "")
                    for row in self.db.execute(f"SELECT * FROM {table}{order}"):
                        if table == "meta" and row["key"] in _PRIVATE_META:
                            continue
                        yield table, dict(row)
            finally:
                self.db.execute("COMMIT")

    def import_rows(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Write exported rows as they are, in one transaction (``actions`` get new ids,
        in the order given)."""
        with self.transaction() as db:
            for table, fields in rows:
                if table not in _COPIED:
                    raise LedgerError(f"{self.path}: cannot import a {table!r} row")
                if table == "actions":
                    fields = {k: v for k, v in fields.items() if k != "id"}
                names = ", ".join(fields)
                marks = ", ".join("?" * len(fields))
                db.execute(
                    f"INSERT OR REPLACE INTO {table}({names}) VALUES({marks})",
                    tuple(fields.values()),
                )

    def row_counts(self) -> dict[str, int]:
        """Records per table (meta without the store's own keys)."""
        with self.lock:
            counts = {
                table: int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in _COPIED
            }
            private = ",".join("?" * len(_PRIVATE_META))
            counts["meta"] = int(
                self.db.execute(
                    f"SELECT COUNT(*) FROM meta WHERE key NOT IN ({private})", tuple(_PRIVATE_META)
                ).fetchone()[0]
            )
        return counts


# Copied between stores, in this order (controller.state.copy.TABLES), oldest rows first.
_COPIED = ("meta", "jobs", "definitions", "schedules", "schedule_ticks", "actions", "passes")
_COPY_ORDER = {
    "jobs": " ORDER BY created_at, token",
    "actions": " ORDER BY id",
    "schedule_ticks": " ORDER BY tick",
    "passes": " ORDER BY started_at",
}
# This store's own bookkeeping: never copied to another store.
_PRIVATE_META = ("schema_version",)


def _over(alias: str = "") -> str:
    """SQL: this job record can never change again."""
    prefix = f"{alias}." if alias else ""
    marks = ",".join(f"'{status}'" for status in FINISHED_STATUSES)
    return (
        f"({prefix}state IN ('rejected','lost') OR "
        f"({prefix}state='submitted' AND {prefix}status IN ({marks})))"
    )


def _job(row: sqlite3.Row) -> JobRecord:
    summary = row["array_summary"]
    return JobRecord(
        token=row["token"],
        queue=row["queue"],
        name=row["name"],
        manifest=row["manifest"],
        spec_hash=row["spec_hash"],
        revision=row["revision"],
        author=row["author"],
        committed_at=row["committed_at"],
        job_id=row["job_id"],
        state=row["state"],
        status=row["status"],
        status_reason=row["status_reason"],
        array_summary=json.loads(summary) if summary else None,
        prune=bool(row["prune"]),
        is_current=bool(row["is_current"]),
        retired=bool(row["retired"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        seen_at=row["seen_at"],
        missing_since=row["missing_since"],
    )


def _definition(row: sqlite3.Row) -> DefinitionRecord:
    return DefinitionRecord(
        arn=row["arn"],
        name=row["name"],
        revision=row["revision"],
        manifest=row["manifest"],
        spec_hash=row["spec_hash"],
        commit_sha=row["commit_sha"],
        author=row["author"],
        prune=bool(row["prune"]),
        status=row["status"],
    )
