"""The shared ledger store: one DynamoDB table for every replica (``--state dynamodb://TABLE``).

Implements :class:`controller.state.ledger.Ledger` with the same meaning as the embedded
:mod:`controller.state.sqlite` (the reference), so that all replicas of a controller
share one history: a standby always knows everything the leader did, and a new leader
needs no catch-up from AWS tags. The only module that speaks DynamoDB items; opened by
:func:`controller.state.stores.open_ledger`, created by ``batch-gitops ledger
create-table`` (:meth:`DynamoLedger.create_table`).

Item layout (one table, string keys ``pk`` and ``sk``; ``docs/state.md`` has the same
table with the reasons)::

    pk                       sk          what
    META                     <key>       a meta value (``value``); ``#...`` keys are the store's own
    LEASE                    <name>      the leader lease / writer lock (controller.aws.lease)
    KEY#<queue>#<name>       HEAD        a job key: ``current`` = token of its current run;
                                         an open schedule tick of that job name
    RUN#<token>              RUN         one run (submission): every JobRecord field
    DEF#<arn>                DEF         one registered definition revision
    SCHEDULE                 <q>#<name>  one schedule (its cron, since, last tick, active)
    TICK#<queue>#<name>      <tick>      one decided tick of a schedule (run | skipped)
    ACTION#<seq>             ACTION      one audit action
    PASS#<pass id>           PASS        one pass (start, end, result, summary)

Global secondary indexes, all *sparse* (an item is in an index only while it carries the
index's key attributes), so that each read of a pass is a Query bounded by what is live,
never a Scan and never proportional to history:

    index        hash / range               holds                             read by
    live         gsi_live / gsi_live_key    current runs ("run"),             current_jobs,
                                            ACTIVE definitions ("def")        job_status_counts,
                                                                              active_definitions
    open         gsi_open / gsi_open_key    runs in state intent ("intent"),  open_intents,
                                            HEADs of run ticks not over       open_ticks
                                            yet ("tick")
    over         gsi_over / updated_at (N)  what retention may delete: runs   prune
                                            that are over, INACTIVE
                                            definitions, ticks that are
                                            over, actions, finished passes
    by_id        aws_id / seq               runs (job ID), actions (AWS id)   job_by_id, actions
    by_manifest  manifest / seq             runs and actions                  jobs_matching, actions
    by_revision  rev_shard / rev_seq        runs and actions by commit SHA    jobs_matching, actions
                                            (shard: its first two digits)

``live`` and ``open`` project every attribute (a pass reads whole records from them); the
audit indexes project keys only (they are read rarely, and keys-only projections are
not rewritten by the status updates of every pass), their items are fetched with
BatchGetItem. ``seq`` (creation time in microseconds, then the token or a random id)
orders "oldest first".

Claims: :meth:`DynamoLedger.record_intent` is one ``TransactWriteItems``: the key's HEAD
must still name the run the plan saw (``replaces``; absent for None), the new run item
is put, the replaced run leaves the ``live`` index, and with a fence a
``ConditionCheck`` on the lease item requires ``holder`` and ``term`` unchanged. Only
one writer can win; a deposed leader's late claim fails with
:class:`~controller.state.ledger.Fenced`. Reads from the indexes are eventually
consistent (DynamoDB replicates a GSI within about a second): a new leader may plan
from a view that misses the old leader's last claim, and then its own claim fails with
:class:`~controller.state.ledger.ClaimConflict` against the strongly consistent HEAD.

The writer lock is the lease (:mod:`controller.state.lease_lock`), in this table unless
``lease_table`` names another one. ``backup`` exports the table to a SQLite ledger file
(:mod:`controller.state.copy`); point-in-time recovery, turned on by ``create-table``,
is the AWS-side backup.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from controller.aws.lease import Lease, default_holder_id
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
from controller.state import dynamodb_layout as layout
from controller.state.dynamodb_table import DynamoTable
from controller.state.ledger import (
    ANY_RUN,
    WRITES_SENT_META,
    ClaimConflict,
    Fenced,
    LedgerError,
    PruneResult,
    WriterLock,
)

# Attempts of a claim whose transaction collided with another on the same items.
CLAIM_ATTEMPTS = 5
# Status updates of one pass are written by this many threads (one UpdateItem each).
WRITE_THREADS = 8
# A status AWS returned unchanged is not written again (a write per active job per pass
# is what the shared store would cost most), except to refresh ``seen_at`` this often.
SEEN_REFRESH = 300.0


def _s(text: str) -> dict[str, str]:
    return {"S": text}


class DynamoLedger:
    """:class:`controller.state.ledger.Ledger` in one DynamoDB table (see the module doc)."""

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        lease_table: str = "",
        lease_name: str = "batch-gitops",
        lease_seconds: float = 15.0,
    ) -> None:
        self.table = table
        self.db = DynamoTable(table, client)
        self.lease_table = lease_table or table
        self.lease_name = lease_name
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}  # job ID -> token (never changes once set)
        # job ID -> its current run as the last current_jobs() read it (this process is
        # the only writer while it holds the lease): unchanged statuses are not rewritten
        self._read: dict[str, JobRecord] = {}
        self._records_marked = False

    # --- the table ---
    @property
    def location(self) -> str:
        return self.db.location

    def create_table(self, *, point_in_time_recovery: bool = True) -> bool:
        """Create the table (idempotent, see :meth:`DynamoTable.create_table`); True if
        it was created now."""
        created = self.db.create_table(point_in_time_recovery=point_in_time_recovery)
        self.check()
        return created

    def check(self) -> None:
        """Fail with a clear line unless the table exists with a layout this controller
        can use; a new table (e.g. from CloudFormation) gets the layout mark."""
        found = self.db.layout_mark()
        if found is None:
            self.set_meta(layout.LAYOUT_META, str(layout.LAYOUT_VERSION))
            return
        version = int(found["value"]["S"])
        if version > layout.LAYOUT_VERSION:
            raise LedgerError(
                f"{self.location}: ledger layout {version} is newer than this controller "
                f"({layout.LAYOUT_VERSION}); upgrade batch-gitops"
            )

    def close(self) -> None:
        """Nothing to release: every call is its own request."""

    # --- the writer lock: the lease ---
    def _lease_key(self, name: str, table: str) -> dict[str, Any]:
        """The lease item's key: ``LEASE``/<name> here, ``name`` in a lease table."""
        return layout.lease_key(name) if table == self.table else {"name": _s(name)}

    def leader_lease(self, holder: str = "", purpose: str = "run") -> Lease:
        """The lease the daemon replicas elect their leader with (and writers lock with)."""
        return Lease(
            self.lease_table,
            self.lease_name,
            holder or default_holder_id(),
            self.lease_seconds,
            key=self._lease_key(self.lease_name, self.lease_table),
            purpose=purpose,
        )

    def writer_lock(self, purpose: str) -> WriterLock:
        """The lease (:mod:`controller.state.lease_lock`), held for the whole command."""
        from controller.state.lease_lock import LeaseWriterLock

        return LeaseWriterLock(self.leader_lease(purpose=purpose), self.location)

    def _fence_check(self, fence: Fence) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": fence.table,
                "Key": self._lease_key(fence.name, fence.table),
                "ConditionExpression": "holder = :holder AND #term = :term",
                "ExpressionAttributeNames": {"#term": "term"},
                "ExpressionAttributeValues": {
                    ":holder": _s(fence.holder),
                    ":term": layout.value(fence.term),
                },
            }
        }

    def backup(self, destination: Path) -> None:
        """An export to a SQLite ledger file (usable as ``--state``, or migrated back).

        Items are read one by one, not as a snapshot: each key's current run is taken
        from its HEAD re-read after the scan, so the copy holds at least every write that
        finished before it started. For point-in-time restores use the table's
        point-in-time recovery (AWS side).
        """
        from controller.state.copy import copy_ledger
        from controller.state.sqlite import SqliteLedger

        target = SqliteLedger(destination)
        try:
            copy_ledger(self, target)
        finally:
            target.close()

    # --- small helpers ---
    def _mark_records(self) -> None:
        """Remember for good that this store holds records (``is_empty`` reads it)."""
        if not self._records_marked:
            self.set_meta(layout.RECORDS_META, str(time.time()))
            self._records_marked = True

    def _remember(self, job_id: str | None, token: str) -> None:
        if job_id:
            with self._lock:
                self._tokens[job_id] = token

    def _token_of(self, job_id: str) -> str | None:
        """The run holding ``job_id`` (remembered from reads, else the ``by_id`` index)."""
        with self._lock:
            known = self._tokens.get(job_id)
        if known is not None:
            return known
        for found in self.db.query("by_id", "aws_id = :id", {":id": _s(job_id)}):
            pk = str(found["pk"]["S"])
            if pk.startswith("RUN#"):
                token = pk.removeprefix("RUN#")
                self._remember(job_id, token)
                return token
        return None

    def _current_token(self, queue: str, name: str) -> str | None:
        head = self.db.get(layout.head_key(queue, name)) or {}
        current = head.get("current", {}).get("S")
        return str(current) if current else None

    def _current_run(self, queue: str, name: str) -> dict[str, Any] | None:
        """The plain fields of a key's current run (strongly consistent), if any."""
        token = self._current_token(queue, name)
        run = self.db.get(layout.run_key(token)) if token else None
        return layout.plain(run) if run else None

    # --- meta ---
    def get_meta(self, key: str) -> str | None:
        found = self.db.get(layout.key("META", key))
        return None if found is None else str(found["value"]["S"])

    def set_meta(self, key: str, value: str) -> None:
        self.db.put({**layout.key("META", key), **layout.item(type="meta", key=key, value=value)})

    # --- jobs ---
    def current_jobs(self) -> dict[tuple[str, str], JobRecord]:
        """The current run of every job key (one Query of the ``live`` index)."""
        found: dict[tuple[str, str], JobRecord] = {}
        for typed in self.db.query("live", "gsi_live = :run", {":run": _s("run")}):
            record = layout.job(typed)
            found[record.key] = record
            self._remember(record.job_id, record.token)
        with self._lock:
            self._read = {r.job_id: r for r in found.values() if r.job_id}
        return found

    def job_status_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for typed in self.db.query(
            "live",
            "gsi_live = :run",
            {":run": _s("run")},
            ProjectionExpression="#q, #s, retired",
            ExpressionAttributeNames={"#q": "queue", "#s": "status"},
        ):
            fields = layout.plain(typed)
            status = fields.get("status")
            if fields.get("retired") or not status:
                continue
            key = (str(fields["queue"]), str(status))
            counts[key] = counts.get(key, 0) + 1
        return counts

    def jobs(self, *, include_retired: bool = True) -> list[JobRecord]:
        """Every run, oldest first (a Scan: the whole history, for dumps and tools)."""
        records = [layout.job(typed) for typed in self.db.scan_type("run")]
        if not include_retired:
            records = [r for r in records if not r.retired]
        return sorted(records, key=lambda r: (r.created_at, r.token))

    def is_empty(self) -> bool:
        return (
            self.get_meta(layout.RECORDS_META) is None and self.get_meta(WRITES_SENT_META) is None
        )

    def open_intents(self) -> list[JobRecord]:
        return [
            layout.job(typed)
            for typed in self.db.query("open", "gsi_open = :i", {":i": _s("intent")})
        ]

    def job_by_id(self, job_id: str) -> JobRecord | None:
        keys = self._audit_keys("RUN#", revision_prefix=None, manifest=None, aws_id=job_id)
        runs = sorted(map(layout.job, self.db.batch_get(keys)), key=lambda r: r.created_at)
        return runs[0] if runs else None

    def _audit_keys(
        self, kind: str, *, revision_prefix: str | None, manifest: str | None, aws_id: str | None
    ) -> list[dict[str, Any]]:
        """Keys of ``kind`` items ("RUN#" or "ACTION#") from the most selective audit index."""
        found: Iterable[dict[str, Any]]
        if aws_id:
            found = self.db.query("by_id", "aws_id = :v", {":v": _s(aws_id)})
        elif manifest:
            found = self.db.query("by_manifest", "manifest = :v", {":v": _s(manifest)})
        else:
            prefix = revision_prefix or ""
            shards = [prefix[:2]] if len(prefix) >= 2 else [prefix + c for c in "0123456789abcdef"]
            found = (
                typed
                for shard in shards
                for typed in self.db.query(
                    "by_revision",
                    "rev_shard = :s AND begins_with(rev_seq, :p)",
                    {":s": _s(shard), ":p": _s(prefix)},
                )
            )
        return [
            {"pk": typed["pk"], "sk": typed["sk"]}
            for typed in found
            if str(typed["pk"]["S"]).startswith(kind)
        ]

    def jobs_matching(
        self, *, revision_prefix: str | None = None, manifest: str | None = None
    ) -> list[JobRecord]:
        if not revision_prefix and not manifest:
            return self.jobs()
        keys = self._audit_keys(
            "RUN#", revision_prefix=revision_prefix, manifest=manifest, aws_id=None
        )
        runs = [
            run
            for run in map(layout.job, self.db.batch_get(keys))
            if (not revision_prefix or run.revision.startswith(revision_prefix))
            and (not manifest or run.manifest == manifest)
        ]
        return sorted(runs, key=lambda r: (r.created_at, r.token))

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
        """The claim: one TransactWriteItems only one writer can win (see the module doc)."""
        self._mark_records()
        for attempt in range(CLAIM_ATTEMPTS):
            expected = self._current_token(queue, name) if replaces == ANY_RUN else replaces
            now = time.time()
            run = layout.run_item(
                {
                    "token": token,
                    "queue": queue,
                    "name": name,
                    "manifest": manifest,
                    "spec_hash": spec_hash,
                    "revision": provenance.revision,
                    "author": provenance.author,
                    "committed_at": provenance.committed_at,
                    "state": "intent",
                    "prune": prune,
                    "is_current": True,
                    "retired": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            head: dict[str, Any] = {
                "TableName": self.table,
                "Key": layout.head_key(queue, name),
                "UpdateExpression": "SET #cur = :new, #q = :q, #n = :n, #type = :head",
                "ExpressionAttributeNames": {
                    "#cur": "current",
                    "#q": "queue",
                    "#n": "name",
                    "#type": "type",
                },
                "ExpressionAttributeValues": {
                    ":new": _s(token),
                    ":q": _s(queue),
                    ":n": _s(name),
                    ":head": _s("head"),
                },
                "ConditionExpression": "attribute_not_exists(#cur)",
            }
            if expected is not None:
                head["ConditionExpression"] = "#cur = :old"
                head["ExpressionAttributeValues"][":old"] = _s(expected)
            items: list[dict[str, Any]] = [
                {"Update": head},
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": run,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
            if expected is not None:  # the replaced run is not current any more
                items.append(
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": layout.run_key(expected),
                            "UpdateExpression": "SET updated_at = :now "
                            "REMOVE gsi_live, gsi_live_key",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeValues": {":now": layout.value(now)},
                        }
                    }
                )
            if fence is not None:
                items.append(self._fence_check(fence))
            reasons = self.db.transact(items, token=f"{token}|{expected}|{attempt}")
            if not reasons:
                return
            if fence is not None and reasons[-1] == "ConditionalCheckFailed":
                raise Fenced(
                    f"{self.location}: lease {fence.name!r} is no longer held by "
                    f"{fence.holder} in term {fence.term}: another replica leads; "
                    f"not claiming {queue}/{name}"
                )
            current = self._current_token(queue, name)
            if current == token:
                return  # our own claim landed already (a resend after a lost reply)
            if "TransactionConflict" in reasons and attempt + 1 < CLAIM_ATTEMPTS:
                time.sleep(0.05 * 2**attempt)
                continue
            if replaces == ANY_RUN and reasons[0] == "ConditionalCheckFailed":
                continue  # the HEAD moved between our read and the write: read again
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise LedgerError(f"{self.location}: submission token {token} is already recorded")
            raise ClaimConflict(
                f"{queue}/{name}: another writer recorded a new run ({current}) since "
                "this pass planned; not submitting"
            )
        raise LedgerError(f"{self.location}: {queue}/{name}: the claim kept colliding")

    def _finished(self, attributes: dict[str, Any] | None, status: str) -> None:
        """A run just became submitted and finished: if it is its key's current run, the
        schedule tick it ran for is over (it leaves the ``open`` index)."""
        if not attributes or status not in FINISHED_STATUSES or "gsi_live" not in attributes:
            return
        run = layout.plain(attributes)
        old = self.db.update(
            layout.head_key(run["queue"], run["name"]),
            "REMOVE gsi_open, gsi_open_key",
            {":t": _s(run["token"])},
            condition="#cur = :t AND attribute_exists(gsi_open)",
            names={"#cur": "current"},
            returns="ALL_OLD",
        )
        if not old:
            return  # not a schedule's run
        head = layout.plain(old)
        self.db.update(
            layout.tick_key(head["tick_queue"], head["tick_name"], head["tick"]),
            "SET gsi_over = :tick",
            {":tick": _s("tick")},
            condition="attribute_exists(pk)",
        )

    def record_submitted(self, token: str, job_id: str, status: str = "SUBMITTED") -> None:
        finished = status in FINISHED_STATUSES
        sets = "#state = :submitted, aws_id = :id, #status = :status, updated_at = :now"
        values: dict[str, Any] = {
            ":submitted": _s("submitted"),
            ":id": _s(job_id),
            ":status": _s(status),
            ":now": layout.value(time.time()),
        }
        if finished:
            sets += ", gsi_over = :run"
            values[":run"] = _s("run")
        attributes = self.db.update(
            layout.run_key(token),
            f"SET {sets} REMOVE gsi_open, gsi_open_key",
            values,
            condition="attribute_exists(pk)",
            names={"#state": "state", "#status": "status"},
            returns="ALL_NEW" if finished else "NONE",
        )
        self._remember(job_id, token)
        self._finished(attributes, status)

    def record_outcome(self, token: str, state: str, message: str) -> None:
        self.db.update(
            layout.run_key(token),
            "SET #state = :state, message = :message, updated_at = :now, gsi_over = :run "
            "REMOVE gsi_open, gsi_open_key",
            {
                ":state": _s(state),
                ":message": _s(message),
                ":now": layout.value(time.time()),
                ":run": _s("run"),
            },
            condition="attribute_exists(pk)",
            names={"#state": "state"},
        )

    def _write_status(
        self, job_id: str, status: str, now: float, fields: dict[str, str | None]
    ) -> None:
        """A status AWS returned: ``fields`` set (a value) or cleared (None)."""
        token = self._token_of(job_id)
        if token is None:
            return  # not a run of this ledger (SQLite: an UPDATE that matches no row)
        finished = status in FINISHED_STATUSES
        sets = ["#status = :status", "updated_at = :now", "seen_at = :now", "missing_since = :zero"]
        removes = []
        values: dict[str, Any] = {
            ":status": _s(status),
            ":now": layout.value(now),
            ":zero": layout.value(0.0),
        }
        for field, text in fields.items():
            if text is None:
                removes.append(field)
            else:
                sets.append(f"{field} = :{field}")
                values[f":{field}"] = _s(text)
        if finished:
            sets.append("gsi_over = :run")
            values[":run"] = _s("run")
        attributes = self.db.update(
            layout.run_key(token),
            f"SET {', '.join(sets)}" + (f" REMOVE {', '.join(removes)}" if removes else ""),
            values,
            condition="attribute_exists(pk)",
            names={"#status": "status"},
            returns="ALL_NEW" if finished else "NONE",
        )
        self._finished(attributes, status)

    def _unchanged(self, update: StatusUpdate, now: float) -> bool:
        """AWS returned what the ledger holds, and ``seen_at`` is recent enough."""
        with self._lock:
            read = self._read.get(update.job_id)
        summary = json.loads(update.array_summary) if update.array_summary else None
        return (
            read is not None
            and (read.status, read.status_reason, read.array_summary)
            == (update.status, update.reason, summary)
            and not read.missing_since
            and now - read.seen_at < SEEN_REFRESH
        )

    def _write_update(self, update: StatusUpdate, now: float) -> None:
        if update.seen and self._unchanged(update, now):
            return
        if update.seen:
            self._write_status(
                update.job_id,
                update.status,
                now,
                {"status_reason": update.reason, "array_summary": update.array_summary},
            )
            return
        token = self._token_of(update.job_id)
        if token is not None:  # since when AWS has not returned it (the first miss is kept)
            self.db.update(
                layout.run_key(token),
                "SET missing_since = :now, updated_at = :now",
                {":now": layout.value(now), ":zero": layout.value(0.0)},
                condition="attribute_exists(pk) AND missing_since = :zero",
            )

    def update_statuses(self, updates: list[StatusUpdate], now: float) -> None:
        """One UpdateItem per run whose status changed or went missing (sent by a few
        threads: a pass reads hundreds); an unchanged one only every SEEN_REFRESH."""
        if len(updates) <= 1:
            for update in updates:
                self._write_update(update, now)
            return
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            list(pool.map(lambda u: self._write_update(u, now), updates))

    def record_status(self, job_id: str, status: str, reason: str | None = None) -> None:
        # A reason of None keeps the recorded one (SQLite: COALESCE).
        self._write_status(
            job_id, status, time.time(), {} if reason is None else {"status_reason": reason}
        )

    def _update_current(
        self, queue: str, name: str, expression: str, values: dict[str, Any]
    ) -> None:
        token = self._current_token(queue, name)
        if token is None:
            return
        self.db.update(
            layout.run_key(token),
            expression,
            {**values, ":now": layout.value(time.time())},
            condition="attribute_exists(gsi_live)",
        )

    def set_retired(self, queue: str, name: str, retired: bool) -> None:
        self._update_current(
            queue,
            name,
            "SET retired = :retired, updated_at = :now",
            {":retired": layout.value(retired)},
        )

    def set_manifest(self, queue: str, name: str, manifest: str) -> None:
        if manifest:
            self._update_current(
                queue, name, "SET manifest = :m, updated_at = :now", {":m": _s(manifest)}
            )
        else:  # "" cannot be an index key: absent means ""
            self._update_current(queue, name, "SET updated_at = :now REMOVE manifest", {})

    # --- definitions ---
    def active_definitions(self) -> dict[str, list[DefinitionRecord]]:
        result: dict[str, list[DefinitionRecord]] = {}
        for typed in self.db.query("live", "gsi_live = :def", {":def": _s("def")}):
            record = layout.definition(typed)
            result.setdefault(record.name, []).append(record)
        for revisions in result.values():
            revisions.sort(key=lambda d: d.revision)
        return dict(sorted(result.items()))

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
        self._mark_records()
        now = time.time()
        self.db.put(
            layout.definition_item(
                {
                    "arn": arn,
                    "name": name,
                    "revision": revision,
                    "manifest": manifest,
                    "spec_hash": spec_hash,
                    "commit_sha": provenance.revision,
                    "author": provenance.author,
                    "prune": prune,
                    "status": "ACTIVE",
                    "created_at": now,
                    "updated_at": now,
                }
            )
        )

    def record_deregistered(self, arn: str) -> None:
        self.db.update(
            layout.key(f"DEF#{arn}", "DEF"),
            "SET #status = :inactive, updated_at = :now, gsi_over = :def "
            "REMOVE gsi_live, gsi_live_key",
            {":inactive": _s("INACTIVE"), ":now": layout.value(time.time()), ":def": _s("def")},
            condition="attribute_exists(pk)",
            names={"#status": "status"},
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
        at = time.time()
        self.db.put(
            layout.action_item(
                {
                    "id": layout.seq(at, uuid.uuid4().hex[:12]),
                    "pass_id": pass_id,
                    "at": at,
                    "action": action,
                    "kind": kind,
                    "queue": queue,
                    "name": name,
                    "manifest": manifest,
                    "revision": provenance.revision,
                    "author": provenance.author,
                    "committed_at": provenance.committed_at,
                    "result": result,
                    "aws_id": aws_id,
                    "message": message,
                }
            )
        )

    def actions(
        self,
        *,
        revision: str | None = None,
        manifest: str | None = None,
        aws_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        if revision or manifest or aws_id:
            keys = self._audit_keys(
                "ACTION#", revision_prefix=revision, manifest=manifest, aws_id=aws_id
            )
            found = self.db.batch_get(keys)
        else:
            found = list(self.db.scan_type("action"))
        lowered = (revision or "").lower()
        rows = [
            row
            for row in map(layout.action_row, found)
            if (not revision or str(row["revision"]).lower().startswith(lowered))
            and (not manifest or row["manifest"] == manifest)
            and (not aws_id or row["aws_id"] == aws_id)
        ]
        rows.sort(key=lambda row: str(row["id"]))
        return rows[:limit]

    def start_pass(self, pass_id: str) -> None:
        self.db.put(layout.pass_item({"pass_id": pass_id, "started_at": time.time()}))

    def finish_pass(
        self, pass_id: str, revision: str, result: str, summary: dict[str, Any]
    ) -> None:
        now = time.time()
        self.db.update(
            layout.key(f"PASS#{pass_id}", "PASS"),
            "SET finished_at = :now, revision = :revision, #result = :result, "
            "summary = :summary, gsi_over = :pass, updated_at = :now",
            {
                ":now": layout.value(now),
                ":revision": _s(revision),
                ":result": _s(result),
                ":summary": _s(json.dumps(summary)),
                ":pass": _s("pass"),
            },
            condition="attribute_exists(pk)",
            names={"#result": "result"},
        )

    # --- schedules ---
    def schedules(self) -> dict[tuple[str, str], ScheduleRow]:
        rows: dict[tuple[str, str], ScheduleRow] = {}
        for typed in self.db.query(None, "pk = :s", {":s": _s("SCHEDULE")}):
            row = layout.schedule_row(typed)
            rows[(row["queue"], row["name"])] = ScheduleRow(
                **{**row, "active": bool(row["active"])}
            )
        return rows

    def ticks(self, queue: str | None = None, name: str | None = None) -> list[TickRow]:
        if queue is not None and name is not None:
            found: Iterable[dict[str, Any]] = self.db.query(
                None, "pk = :p", {":p": _s(f"TICK#{queue}#{name}")}
            )
        else:
            found = self.db.scan_type("tick")
        return sorted(map(layout.tick, found), key=lambda t: (t.tick, t.queue, t.name))

    def open_ticks(self) -> dict[tuple[str, str], list[float]]:
        """Run ticks whose run is not over: the HEADs the ``open`` index holds as ticks."""
        found: dict[tuple[str, str], list[float]] = {}
        for typed in self.db.query("open", "gsi_open = :t", {":t": _s("tick")}):
            head = layout.plain(typed)
            found.setdefault((head["tick_queue"], head["tick_name"]), []).append(head["tick"])
        return {key: sorted(ticks) for key, ticks in found.items()}

    def _schedule_update(self, update: ScheduleUpdate) -> dict[str, Any]:
        """The Update of a schedule's item (``last_tick`` None: keep the recorded one)."""
        sets = [
            "#type = :schedule",
            "#q = :q",
            "#n = :n",
            "cron = :cron",
            "#tz = :tz",
            "since = :since",
            "active = :yes",
        ]
        values: dict[str, Any] = {
            ":schedule": _s("schedule"),
            ":q": _s(update.queue),
            ":n": _s(update.name),
            ":cron": _s(update.cron),
            ":tz": _s(update.timezone),
            ":since": layout.value(update.since),
            ":yes": layout.value(True),
        }
        if update.last_tick is not None:
            sets.append("last_tick = :last")
            values[":last"] = layout.value(update.last_tick)
        if update.manifest:
            sets.append("manifest = :m")
            values[":m"] = _s(update.manifest)
        return {
            "TableName": self.table,
            "Key": layout.schedule_key(update.queue, update.name),
            "UpdateExpression": f"SET {', '.join(sets)}"
            + ("" if update.manifest else " REMOVE manifest"),
            "ExpressionAttributeNames": {
                "#type": "type",
                "#q": "queue",
                "#n": "name",
                "#tz": "timezone",
            },
            "ExpressionAttributeValues": values,
        }

    def _open_tick(self, tick: TickRow, *, only_without_run: bool) -> dict[str, Any]:
        """The Update that marks the tick's job key (its HEAD) as an open tick."""
        fields = layout.open_tick_fields(tick)
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": layout.head_key(tick.queue, tick.job_name),
            "UpdateExpression": "SET #type = :head, #q = :q, #n = :n, "
            + ", ".join(f"{name} = :{name}" for name in fields),
            "ExpressionAttributeNames": {"#type": "type", "#q": "queue", "#n": "name"},
            "ExpressionAttributeValues": {
                ":head": _s("head"),
                ":q": _s(tick.queue),
                ":n": _s(tick.job_name),
                **{f":{name}": typed for name, typed in fields.items()},
            },
        }
        if only_without_run:
            update["ConditionExpression"] = "attribute_not_exists(#cur)"
            update["ExpressionAttributeNames"]["#cur"] = "current"
        return update

    def record_schedules(
        self, updates: list[ScheduleUpdate], removed: list[tuple[str, str]]
    ) -> None:
        """Per schedule, all or nothing: its item, its new tick, and the tick's open mark.

        (SQLite writes a pass's schedules in one transaction; here each schedule is one,
        which keeps what matters: a tick is never recorded without its schedule's row.)
        """
        for update in updates:
            tick = update.tick
            items: list[dict[str, Any]] = [{"Update": self._schedule_update(update)}]
            if tick is not None:
                items.append(
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": layout.tick_item(tick, over=tick.outcome != "run"),
                            "ConditionExpression": "attribute_not_exists(pk)",  # OR IGNORE
                        }
                    }
                )
                if tick.outcome == "run":
                    items.append({"Update": self._open_tick(tick, only_without_run=True)})
            reasons = self.db.transact(items)
            if not reasons:
                continue
            if tick is None or "ConditionalCheckFailed" not in reasons:
                raise LedgerError(
                    f"{self.location}: recording schedule {update.queue}/{update.name} "
                    f"failed ({', '.join(reasons)})"
                )
            self._record_schedule_slowly(update, tick)
        for queue, name in removed:
            self.db.update(
                layout.schedule_key(queue, name),
                "SET active = :no",
                {":no": layout.value(False)},
                condition="attribute_exists(pk)",
            )

    def _record_schedule_slowly(self, update: ScheduleUpdate, tick: TickRow) -> None:
        """What the transaction refused, step by step: the tick was recorded already (it
        stays as it is: INSERT OR IGNORE), or its job key has a run (open unless over)."""
        with self.db.errors("UpdateItem"):
            self.db.client.update_item(**self._schedule_update(update))
        inserted = self.db.put(
            layout.tick_item(tick, over=tick.outcome != "run"),
            condition="attribute_not_exists(pk)",
        )
        if not inserted or tick.outcome != "run":
            return
        run = self._current_run(tick.queue, tick.job_name)
        if run is not None and layout.is_over(run["state"], run.get("status")):
            self.db.update(
                layout.tick_key(tick.queue, tick.name, tick.tick),
                "SET gsi_over = :tick",
                {":tick": _s("tick")},
            )
            return
        with self.db.errors("UpdateItem"):
            self.db.client.update_item(**self._open_tick(tick, only_without_run=False))

    # --- copying (controller.state.copy: ledger migrate, backup) ---
    def export_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every record as a row of the SQLite schema (:mod:`controller.state.copy`).

        One Scan, grouped in memory (about 1 KB a record); then every HEAD is read again
        (strongly): a key's current run is the one at the end of the export, fetched if
        the scan had passed its place before it was written.
        """
        grouped: dict[str, list[dict[str, Any]]] = {t: [] for t in layout.ROW_TABLES.values()}
        heads: list[dict[str, Any]] = []
        for typed in self.db.scan():
            kind = typed.get("type", {}).get("S", "")
            if kind == "head":
                heads.append({"pk": typed["pk"], "sk": typed["sk"]})
            elif kind in layout.ROW_TABLES and not (
                kind == "meta" and str(typed["sk"]["S"]).startswith("#")
            ):
                grouped[layout.ROW_TABLES[kind]].append(typed)
        current = {
            str(head["current"]["S"])
            for head in self.db.batch_get(heads, consistent=True)
            if "current" in head
        }
        runs = {str(typed["token"]["S"]): typed for typed in grouped["jobs"]}
        late = [layout.run_key(token) for token in current if token not in runs]
        runs.update({str(t["token"]["S"]): t for t in self.db.batch_get(late, consistent=True)})

        def oldest_first(table: str, field: str) -> list[dict[str, Any]]:
            return sorted(grouped[table], key=lambda t: layout.plain(t).get(field) or 0)

        for typed in grouped["meta"]:
            fields = layout.plain(typed)
            yield "meta", {"key": fields["key"], "value": fields["value"]}
        for typed in sorted(runs.values(), key=lambda t: str(t["seq"]["S"])):
            yield "jobs", layout.job_row(typed, is_current=str(typed["token"]["S"]) in current)
        for typed in grouped["definitions"]:
            yield "definitions", layout.definition_row(typed)
        for typed in grouped["schedules"]:
            yield "schedules", layout.schedule_row(typed)
        for typed in oldest_first("schedule_ticks", "tick"):
            fields = layout.plain(typed)
            yield "schedule_ticks", {c: fields[c] for c in layout.TICK_COLUMNS}
        for typed in sorted(grouped["actions"], key=lambda t: str(t["seq"]["S"])):
            yield "actions", layout.action_row(typed)
        for typed in oldest_first("passes", "started_at"):
            yield "passes", layout.pass_row(typed)

    def import_rows(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Write exported rows as items (BatchWriteItem), then each key's HEAD."""
        heads: dict[tuple[str, str], dict[str, Any]] = {}
        over: dict[tuple[str, str], bool] = {}  # a key's current run: is it over?
        batch: list[dict[str, Any]] = []
        records = False

        def put(typed: dict[str, Any]) -> None:
            batch.append({"PutRequest": {"Item": typed}})
            if len(batch) >= 25:
                self.db.batch_write(batch)
                batch.clear()

        for table, row in rows:
            if table == "meta":
                put(
                    {
                        **layout.key("META", row["key"]),
                        **layout.item(type="meta", key=row["key"], value=row["value"]),
                    }
                )
            elif table == "jobs":
                records = True
                put(layout.run_item(row))
                if row["is_current"]:
                    key = (row["queue"], row["name"])
                    heads.setdefault(key, {})["current"] = row["token"]
                    over[key] = layout.is_over(row["state"], row.get("status"))
            elif table == "definitions":
                records = True
                put(layout.definition_item(row))
            elif table == "schedules":
                put(layout.schedule_item(row))
            elif table == "schedule_ticks":
                tick = TickRow(**{c: row[c] for c in layout.TICK_COLUMNS})
                job = (tick.queue, tick.job_name)
                ticking = tick.outcome == "run" and not over.get(job, False)
                put(layout.tick_item(tick, over=not ticking))
                if ticking:
                    heads.setdefault(job, {})["tick"] = tick
            elif table == "actions":
                order = row["id"]
                if not isinstance(order, str):  # SQLite's autoincrement id
                    order = layout.seq(float(row["at"]), f"{int(order):012d}")
                put(layout.action_item({**row, "id": order}))
            elif table == "passes":
                put(layout.pass_item(row))
            else:
                raise LedgerError(f"{self.location}: cannot import a {table!r} row")
        for (queue, name), head in heads.items():
            typed = {
                **layout.head_key(queue, name),
                **layout.item(type="head", queue=queue, name=name, current=head.get("current")),
            }
            if "tick" in head:
                typed.update(layout.open_tick_fields(head["tick"]))
            put(typed)
        if batch:
            self.db.batch_write(batch)
        if records:
            self._mark_records()

    def row_counts(self) -> dict[str, int]:
        """Records per row table (a Scan of keys and types)."""
        counts = dict.fromkeys(layout.ROW_TABLES.values(), 0)
        for typed in self.db.scan(
            ProjectionExpression="pk, sk, #type", ExpressionAttributeNames={"#type": "type"}
        ):
            kind = typed.get("type", {}).get("S", "")
            if kind in layout.ROW_TABLES and not (
                kind == "meta" and str(typed["sk"]["S"]).startswith("#")
            ):
                counts[layout.ROW_TABLES[kind]] += 1
        return counts

    # --- retention ---
    def _over(self, kind: str, cutoff: float) -> Iterator[dict[str, Any]]:
        return self.db.query(
            "over",
            "gsi_over = :k AND updated_at < :cutoff",
            {":k": _s(kind), ":cutoff": layout.value(cutoff)},
        )

    def prune(self, cutoff: float, *, dry_run: bool = False) -> PruneResult:
        """The rules of :mod:`controller.state.retention`, read from the ``over`` index.

        Not one transaction as in SQLite: each tick goes with its run (and the run's
        HEAD) in one, so a crash between deletions never strands a run nothing prunes.
        """
        result = PruneResult(dry_run=dry_run)
        deletes: list[dict[str, Any]] = []
        tick_jobs: set[tuple[str, str]] = set()
        for typed in self._over("tick", cutoff):
            tick = layout.plain(typed)
            if tick["tick"] >= cutoff:
                continue
            items = [{"Delete": {"TableName": self.table, "Key": _keys(typed)}}]
            if tick["outcome"] == "run":
                run = self._current_run(tick["queue"], tick["job_name"])
                if (
                    run is None
                    or not layout.is_over(run["state"], run.get("status"))
                    or run["updated_at"] >= cutoff
                ):
                    continue
                tick_jobs.add((tick["queue"], tick["job_name"]))
                result.jobs += 1
                items += self._delete_current_run(run["queue"], run["name"], run["token"])
            result.ticks += 1
            if not dry_run and self.db.transact(items):
                raise LedgerError(f"{self.location}: pruning a tick failed; run prune again")
        for typed in self._over("run", cutoff):
            run = layout.plain(typed)
            current = "gsi_live" in run
            if (run["queue"], run["name"]) in tick_jobs and current:
                continue  # deleted with its tick above
            if current and not run.get("retired"):
                continue  # the current run of a job in git: never
            result.jobs += 1
            if dry_run:
                continue
            if current:
                if self.db.transact(
                    self._delete_current_run(run["queue"], run["name"], run["token"])
                ):
                    result.jobs -= 1  # it stopped being current meanwhile: next time
            else:
                deletes.append({"DeleteRequest": {"Key": _keys(typed)}})
        for kind, field in (("def", "definitions"), ("action", "actions"), ("pass", "passes")):
            for typed in self._over(kind, cutoff):
                setattr(result, field, getattr(result, field) + 1)
                deletes.append({"DeleteRequest": {"Key": _keys(typed)}})
        if not dry_run:
            self.db.batch_write(deletes)
        return result

    def _delete_current_run(self, queue: str, name: str, token: str) -> list[dict[str, Any]]:
        """Delete a key's current run and its HEAD, if the HEAD still names it."""
        return [
            {"Delete": {"TableName": self.table, "Key": layout.run_key(token)}},
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": layout.head_key(queue, name),
                    "ConditionExpression": "#cur = :t",
                    "ExpressionAttributeNames": {"#cur": "current"},
                    "ExpressionAttributeValues": {":t": _s(token)},
                }
            },
        ]


def _keys(typed: dict[str, Any]) -> dict[str, Any]:
    return {"pk": typed["pk"], "sk": typed["sk"]}
