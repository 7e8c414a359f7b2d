"""Leader election for several replicas: one lease item in DynamoDB, conditional writes.

Used by the shared ledger (:mod:`controller.state.dynamodb`: its writer lock, and the
daemon's leadership) with the lease item in the ledger's own table, or in a separate
``lease_table``. The item ``{name, holder, version, term, host, pid, since, purpose,
lease_seconds, renewed_at, expires_at}`` is only ever changed with a
``ConditionExpression`` on its current ``version`` (a fresh UUID per write), so
two replicas can never both believe a write of theirs won.

``term`` grows by one with every change of holder (never on a renewal): a holder's
:class:`~controller.model.records.Fence` is ``(holder, term)``, and the shared ledger
checks it atomically with every claim it writes (a ``ConditionCheck`` on this item in
the same ``TransactWriteItems``), so a deposed leader's late write fails. ``host``,
``pid``, ``since`` and ``purpose`` say who holds it, for a writer that has to wait.

Clocks are never compared across hosts (client-go's leader election does the
same): a standby takes over only after it has *itself* watched the same
``version`` for ``lease_seconds`` of its own monotonic clock; the holder treats
its lease as valid for ``lease_seconds`` minus a safety margin counted from the
moment it *sent* the renewal. Since the standby's watch starts after that write
landed, the holder's validity always ends first. ``expires_at``/``renewed_at``
(wall clock) are written for people reading the table, not for decisions.

What the fence cannot reach: AWS Batch itself takes no token, so a holder that
is frozen (SIGSTOP, a VM pause) *between* its last validity check and the bytes
of a write leaving the socket could still send one write after a standby took
over. For SubmitJob that write is preceded by a fenced claim in the ledger, which
fails; a CancelJob or RegisterJobDefinition is guarded only by the check in
botocore's ``before-send`` hook, after the rate limiter's wait, which makes that
window as small as this design allows.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import structlog

from controller import metrics
from controller.aws.batch import WRITE_OPERATIONS, BatchApi, Boto3Batch
from controller.model.records import Fence, Holder

log = structlog.get_logger(__name__)

# The holder stops trusting its lease this much earlier than a standby may take it.
SAFETY_MARGIN = 0.2


class LeaseLost(Exception):
    """This replica no longer holds the lease: nothing more may be written to AWS."""


class LeaseError(Exception):
    """The lease table cannot be used (missing, no permission): a configuration problem."""


def default_holder_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class Observed:
    """What a standby last saw in the table, and since when (its own monotonic clock)."""

    version: str
    holder: str
    since: float
    lease_seconds: float
    term: int = 0


class Lease:
    """One replica's view of the lease named ``name`` in ``table``."""

    def __init__(
        self,
        table: str,
        name: str,
        holder: str,
        lease_seconds: float,
        *,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
        key: dict[str, Any] | None = None,
        purpose: str = "run",
    ) -> None:
        self.table = table
        self.name = name
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.clock = clock
        # The item's primary key: ``{"name": <name>}`` in a lease table of its own; the
        # shared ledger's table passes its own key layout.
        self.key: dict[str, Any] = key or {"name": {"S": name}}
        self._key_attribute = next(iter(self.key))
        self.purpose = purpose
        self.client = client or boto3.client(
            "dynamodb",
            config=botocore.config.Config(
                # A renewal must answer well within the lease, or it is worthless.
                connect_timeout=max(1.0, lease_seconds / 5),
                read_timeout=max(1.0, lease_seconds / 5),
                retries={"mode": "standard", "total_max_attempts": 2},
            ),
        )
        self._lock = threading.Lock()
        self._version: str | None = None  # ours, while we hold it
        self._valid_until = 0.0
        self._observed: Observed | None = None
        self.current_holder = ""
        self.current_item: dict[str, Any] | None = None  # the item as last read
        # The item's term while we hold it (the first holder of a new item has term 0;
        # every change of holder adds one). With ``holder`` it is our fence.
        self.term = 0
        self._since = 0.0  # wall clock when we took it (for people: Holder.since)
        self._attempted: list[str] = []  # versions this replica tried to write, newest last

    # --- state ---
    def held(self) -> bool:
        """True while this replica may write (checked before every Batch write)."""
        return self._version is not None and self.clock() < self._valid_until

    def check(self) -> None:
        if not self.held():
            raise LeaseLost(
                f"lease {self.name!r} in {self.table} is not held by {self.holder} "
                f"(holder: {self.current_holder or 'nobody'}); refusing to write"
            )

    def fence(self) -> Fence | None:
        """Our fencing token while we hold the lease (None otherwise)."""
        if not self.held():
            return None
        return Fence(table=self.table, name=self.name, holder=self.holder, term=self.term)

    def holder_info(self) -> Holder | None:
        """Who holds the lease according to the item last read (None: nobody)."""
        item = self.current_item
        if not item or not item["holder"]:
            return None
        return Holder(
            host=item["host"] or item["holder"],
            pid=item["pid"],
            since=item["since"],
            purpose=item["purpose"],
        )

    # --- table ---
    def create_table(self) -> None:
        """Create the lease table (on-demand) if it does not exist; tests and first setup."""
        try:
            self.client.create_table(
                TableName=self.table,
                AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except self.client.exceptions.ResourceInUseException:
            return
        self.client.get_waiter("table_exists").wait(TableName=self.table)

    def read(self) -> dict[str, Any] | None:
        """The lease item as plain values, or None when there is none."""
        reply = self.client.get_item(TableName=self.table, Key=self.key, ConsistentRead=True)
        item = reply.get("Item")
        if not item:
            self.current_item = None
            return None

        def number(name: str, default: float = 0.0) -> float:
            return float(item.get(name, {}).get("N", default))

        self.current_item = {
            "holder": item.get("holder", {}).get("S", ""),
            "version": item.get("version", {}).get("S", ""),
            "lease_seconds": number("lease_seconds", self.lease_seconds),
            "expires_at": number("expires_at"),
            "term": int(number("term")),  # an item written before terms existed: 0
            "host": item.get("host", {}).get("S", ""),
            "pid": int(number("pid")),
            "since": number("since"),
            "purpose": item.get("purpose", {}).get("S", ""),
        }
        return dict(self.current_item)

    def _write(
        self, holder: str, condition: str, values: dict[str, Any], term: int | None = None
    ) -> str:
        """One conditional PutItem; returns the new version (raises if the condition fails).

        ``term``: the term the item gets (default: ours, unchanged by a renewal).
        """
        version = uuid.uuid4().hex
        # Remembered before sending: a write whose reply is lost may still have landed.
        self._attempted = [*self._attempted[-7:], version]
        now = time.time()
        mine = holder == self.holder
        item: dict[str, Any] = {
            **self.key,
            "name": {"S": self.name},
            "holder": {"S": holder},
            "version": {"S": version},
            "term": {"N": str(self.term if term is None else term)},
            "lease_seconds": {"N": repr(self.lease_seconds)},
            "renewed_at": {"N": repr(now)},
            "expires_at": {"N": repr(now + self.lease_seconds)},
        }
        if mine:  # who holds it, for a writer that has to wait (empty when released)
            item.update(
                host={"S": socket.gethostname()},
                pid={"N": str(os.getpid())},
                since={"N": repr(self._since or now)},
                purpose={"S": self.purpose},
            )
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": condition,
        }
        if "#n" in condition:
            kwargs["ExpressionAttributeNames"] = {"#n": self._key_attribute}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        self.client.put_item(**kwargs)
        return version

    # --- protocol ---
    def try_acquire(self) -> bool:
        """Renew if held, else take the lease if it is free or its holder went silent.

        Returns whether this replica holds the lease afterwards. Never raises for a
        lost race or an unreachable table (then: not held once validity runs out).
        """
        with self._lock:
            was_held = self.held()
            try:
                self._step()
            except botocore.exceptions.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ResourceNotFoundException":
                    raise LeaseError(
                        f"lease table {self.table!r} does not exist: create it with `batch-gitops "
                        f"ledger create-table dynamodb://{self.table}` (see docs/state.md)"
                    ) from exc
                if code in ("AccessDeniedException", "UnrecognizedClientException"):
                    raise LeaseError(
                        f"no permission on lease table {self.table!r}: {code}; the role needs "
                        "dynamodb:GetItem and dynamodb:PutItem on it (deploy/iam-policy.json)"
                    ) from exc
                log.warning("lease_unreachable", table=self.table, error=str(exc))
            except botocore.exceptions.BotoCoreError as exc:
                # Outcome unknown: keep our validity as it was; it runs out on its own.
                log.warning("lease_unreachable", table=self.table, error=str(exc))
            held = self.held()
            if held != was_held:
                event = "lease_acquired" if held else "lease_lost"
                log.info(event, lease=self.name, holder=self.holder, table=self.table)
                metrics.LEASE_TRANSITIONS.labels(event="acquired" if held else "lost").inc()
            metrics.LEADER.set(1 if held else 0)
            return held

    def _step(self) -> None:
        started = self.clock()
        if self._version is not None and self._renew(started):
            return
        item = self.read()
        if item is None:
            self._take(started, "attribute_not_exists(#n)", {}, term=0)
            return
        self.current_holder = item["holder"]
        if item["holder"] == self.holder and item["version"] in self._attempted:
            # Ours already (a write whose reply was lost): continue from its version.
            self._version = item["version"]
            if self.term != item["term"]:  # the lost reply was a take: this is our term
                self.term, self._since = item["term"], item["since"] or time.time()
            self._renew(started)
            return
        if item["holder"] == self.holder:
            # Our name, a version we never wrote: another process shares our holder id.
            # Treat it as anyone else's lease rather than both leading.
            log.error("lease_holder_id_clash", lease=self.name, holder=self.holder)
        if not item["holder"]:  # released on purpose: no need to wait
            self._take(
                started, "version = :seen", {":seen": {"S": item["version"]}}, item["term"] + 1
            )
            return
        seen = self._observed
        if seen is None or seen.version != item["version"]:
            self._observed = Observed(
                item["version"], item["holder"], started, item["lease_seconds"], item["term"]
            )
            return
        silent_for = started - seen.since
        if silent_for >= max(self.lease_seconds, seen.lease_seconds):
            log.info(
                "lease_takeover", lease=self.name, previous=seen.holder, silent_seconds=silent_for
            )
            self._take(started, "version = :seen", {":seen": {"S": seen.version}}, seen.term + 1)

    def _renew(self, started: float) -> bool:
        assert self._version is not None
        try:
            self._version = self._write(
                self.holder,
                "holder = :me AND version = :mine",
                {":me": {"S": self.holder}, ":mine": {"S": self._version}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            self._version = None
            self._valid_until = 0.0
            return False
        self._valid_until = started + self.lease_seconds * (1 - SAFETY_MARGIN)
        self.current_holder = self.holder
        return True

    def _take(self, started: float, condition: str, values: dict[str, Any], term: int) -> None:
        since = time.time()
        previous, self._since = self._since, since
        try:
            self._version = self._write(self.holder, condition, values, term=term)
        except self.client.exceptions.ConditionalCheckFailedException:
            self._observed = None  # someone else moved first: watch again from scratch
            self._since = previous
            return
        self.term = term
        self._valid_until = started + self.lease_seconds * (1 - SAFETY_MARGIN)
        self._observed = None
        self.current_holder = self.holder

    def release(self) -> None:
        """Hand the lease back (clean shutdown) so a standby takes it at its next poll."""
        with self._lock:
            if self._version is None:
                return
            mine, self._version, self._valid_until = self._version, None, 0.0
            try:
                self._write(
                    "",
                    "holder = :me AND version = :mine",
                    {":me": {"S": self.holder}, ":mine": {"S": mine}},
                )
                log.info("lease_released", lease=self.name, holder=self.holder)
                metrics.LEASE_TRANSITIONS.labels(event="released").inc()
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                log.warning("lease_release_failed", lease=self.name, error=str(exc))
            metrics.LEADER.set(0)


class LeaseKeeper:
    """A thread that renews (leader) or watches (standby) every ``lease_seconds / 4``."""

    def __init__(self, lease: Lease, on_acquired: Callable[[], None] = lambda: None) -> None:
        self.lease = lease
        self.on_acquired = on_acquired
        self.poll = lease.lease_seconds / 4
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="lease", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            was_held = self.lease.held()
            try:
                held = self.lease.try_acquire()
            except LeaseError as exc:
                log.error("lease_misconfigured", error=str(exc))
                held = False
            if held and not was_held:
                self.on_acquired()
            self.stopped.wait(self.poll)

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=self.poll + 5)


def guard_writes(api: BatchApi, lease: Lease) -> None:
    """Refuse every Batch write unless the lease is held, at the last moment before sending.

    ``register_last`` puts the check after the adapter's own ``before-send`` handler
    (the rate limiter may sleep there), so validity is judged just before the bytes go.
    """

    def check(**_: Any) -> None:
        lease.check()

    if not isinstance(api, Boto3Batch):
        raise TypeError("the lease guard needs the boto3 adapter (its clients' event hooks)")
    for client in (api.client, api.submit_client):
        for operation in sorted(WRITE_OPERATIONS):
            client.meta.events.register_last(f"before-send.batch.{operation}", check)
