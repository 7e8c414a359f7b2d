"""The shared ledger's table layout as code: the CreateTable request, item keys, the item
each record becomes (with the index attributes its state puts it in) and back.

The layout itself, and why, is documented in :mod:`controller.state.dynamodb` (the store
that reads and writes these items) and ``docs/state.md``. Records also have a *row*
shape, the SQLite schema's columns, which :mod:`controller.state.copy` moves between
stores (``ledger migrate``, backups).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Final

from controller.model.jobstatus import FINISHED_STATUSES
from controller.model.records import DefinitionRecord, JobRecord, TickRow

SCHEME: Final = "dynamodb://"
# The item layout this controller writes (meta ``#layout``): a newer one is refused.
LAYOUT_VERSION: Final = 1
LAYOUT_META: Final = "#layout"
# Set with the first record (run or definition) ever written: ``is_empty`` is two reads.
RECORDS_META: Final = "#records"
# AWS's rule for table names.
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")

_STRING_KEYS = (
    "pk",
    "sk",
    "gsi_live",
    "gsi_live_key",
    "gsi_open",
    "gsi_open_key",
    "gsi_over",
    "aws_id",
    "seq",
    "manifest",
    "rev_shard",
    "rev_seq",
)
# index -> (hash key, range key, projection)
INDEXES: Final[dict[str, tuple[str, str, dict[str, Any]]]] = {
    "live": ("gsi_live", "gsi_live_key", {"ProjectionType": "ALL"}),
    "open": ("gsi_open", "gsi_open_key", {"ProjectionType": "ALL"}),
    "over": (
        "gsi_over",
        "updated_at",
        {
            "ProjectionType": "INCLUDE",
            "NonKeyAttributes": [
                "type",
                "token",
                "queue",
                "name",
                "retired",
                "gsi_live",
                "tick",
                "outcome",
                "job_name",
            ],
        },
    ),
    "by_id": ("aws_id", "seq", {"ProjectionType": "KEYS_ONLY"}),
    "by_manifest": ("manifest", "seq", {"ProjectionType": "KEYS_ONLY"}),
    "by_revision": ("rev_shard", "rev_seq", {"ProjectionType": "KEYS_ONLY"}),
}


def table_definition(table: str) -> dict[str, Any]:
    """The CreateTable request of a ledger table (on-demand billing, every index).

    The CloudFormation and Terraform snippets in ``docs/state.md`` describe the same
    table (``tests/ship/test_state_docs.py`` compares them with this).
    """
    attributes = [{"AttributeName": name, "AttributeType": "S"} for name in _STRING_KEYS]
    attributes.append({"AttributeName": "updated_at", "AttributeType": "N"})
    return {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": attributes,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
                "Projection": projection,
            }
            for index, (hash_key, range_key, projection) in INDEXES.items()
        ],
    }


def parse_location(location: str) -> str:
    """The table of ``dynamodb://TABLE``; ValueError with a one-line reason otherwise."""
    if not location.startswith(SCHEME):
        raise ValueError(f"{location}: not a DynamoDB ledger (dynamodb://TABLE)")
    table = location[len(SCHEME) :].strip("/")
    if not TABLE_NAME.match(table):
        raise ValueError(
            f"{location}: a DynamoDB table name is 3-255 letters, digits, '_', '-' or '.'"
        )
    return table


# --- attribute values: plain Python <-> DynamoDB's typed JSON ---
def value(plain: Any) -> dict[str, Any]:
    """One attribute value (str -> S, bool -> BOOL, int/float -> N)."""
    if isinstance(plain, bool):
        return {"BOOL": plain}
    if isinstance(plain, float):
        # Decimal's "f" format: plain digits, never an exponent DynamoDB would refuse.
        return {"N": format(Decimal(repr(plain)), "f")}
    if isinstance(plain, int):
        return {"N": str(plain)}
    if isinstance(plain, str):
        return {"S": plain}
    raise TypeError(f"cannot store {type(plain).__name__} in the ledger")


def item(**fields: Any) -> dict[str, Any]:
    """An item from plain values (None: the attribute is absent)."""
    return {name: value(v) for name, v in fields.items() if v is not None}


def plain(typed: dict[str, Any]) -> dict[str, Any]:
    """An item's plain values (numbers as float)."""
    out: dict[str, Any] = {}
    for name, attribute in typed.items():
        if "S" in attribute:
            out[name] = attribute["S"]
        elif "N" in attribute:
            out[name] = float(attribute["N"])
        elif "BOOL" in attribute:
            out[name] = bool(attribute["BOOL"])
        elif "NULL" in attribute:
            out[name] = None
    return out


# --- keys ---
def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def run_key(token: str) -> dict[str, Any]:
    return key(f"RUN#{token}", "RUN")


def head_key(queue: str, name: str) -> dict[str, Any]:
    return key(f"KEY#{queue}#{name}", "HEAD")


def schedule_key(queue: str, name: str) -> dict[str, Any]:
    return key("SCHEDULE", f"{queue}#{name}")


def tick_sort(tick: float) -> str:
    return format(Decimal(repr(float(tick))), "020.6f")


def tick_key(queue: str, name: str, tick: float) -> dict[str, Any]:
    return key(f"TICK#{queue}#{name}", tick_sort(tick))


def lease_key(name: str) -> dict[str, Any]:
    """The leader lease's item in the ledger's own table."""
    return key("LEASE", name)


def seq(at: float, suffix: str) -> str:
    """Sorts by time (microseconds), then ``suffix``: "oldest first" for runs and actions."""
    return f"{round(at * 1_000_000):017d}#{suffix}"


def _revision_index(revision: str, order: str) -> dict[str, Any]:
    if not revision:
        return {}
    return {"rev_shard": revision[:2], "rev_seq": f"{revision}#{order}"}


def is_over(state: str, status: str | None) -> bool:
    """The run can never change again (SQLite's ``_over``)."""
    return state in ("rejected", "lost") or (state == "submitted" and status in FINISHED_STATUSES)


# --- records -> items ---
def run_item(row: dict[str, Any]) -> dict[str, Any]:
    """A run's item from its ``jobs`` row, with the index attributes its state puts it in."""
    token, queue, name = row["token"], row["queue"], row["name"]
    created = float(row["created_at"])
    order = seq(created, token)
    state, status = row["state"], row.get("status")
    current = bool(row.get("is_current", True))
    return {
        **run_key(token),
        **item(
            type="run",
            token=token,
            queue=queue,
            name=name,
            manifest=row.get("manifest") or None,  # "" cannot be an index key: absent means ""
            spec_hash=row.get("spec_hash", ""),
            revision=row.get("revision", ""),
            author=row.get("author", ""),
            committed_at=float(row.get("committed_at") or 0.0),
            aws_id=row.get("job_id") or None,
            state=state,
            status=status,
            status_reason=row.get("status_reason"),
            array_summary=row.get("array_summary"),
            prune=bool(row.get("prune", True)),
            retired=bool(row.get("retired", False)),
            message=row.get("message"),
            created_at=created,
            updated_at=float(row.get("updated_at") or created),
            seen_at=float(row.get("seen_at") or 0.0),
            missing_since=float(row.get("missing_since") or 0.0),
            seq=order,
            gsi_live="run" if current else None,
            gsi_live_key=f"{queue}#{name}" if current else None,
            gsi_open="intent" if state == "intent" else None,
            gsi_open_key=order if state == "intent" else None,
            gsi_over="run" if is_over(state, status) else None,
            **_revision_index(row.get("revision", ""), order),
        ),
    }


def definition_item(row: dict[str, Any]) -> dict[str, Any]:
    name, revision, active = row["name"], int(row["revision"]), row["status"] == "ACTIVE"
    return {
        **key(f"DEF#{row['arn']}", "DEF"),
        **item(
            type="def",
            arn=row["arn"],
            name=name,
            revision=revision,
            manifest=row.get("manifest") or None,
            spec_hash=row.get("spec_hash", ""),
            commit_sha=row.get("commit_sha", ""),
            author=row.get("author", ""),
            prune=bool(row.get("prune", True)),
            status=row["status"],
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            gsi_live="def" if active else None,
            gsi_live_key=f"{name}#{revision:010d}" if active else None,
            gsi_over=None if active else "def",
        ),
    }


def action_item(row: dict[str, Any]) -> dict[str, Any]:
    """An audit action's item; ``row["id"]`` is its ``seq``."""
    order, at = str(row["id"]), float(row["at"])
    return {
        **key(f"ACTION#{order}", "ACTION"),
        **item(
            type="action",
            pass_id=row.get("pass_id", ""),
            at=at,
            action=row.get("action", ""),
            kind=row.get("kind", ""),
            queue=row.get("queue", ""),
            name=row.get("name", ""),
            manifest=row.get("manifest") or None,
            revision=row.get("revision", ""),
            author=row.get("author", ""),
            committed_at=float(row.get("committed_at") or 0.0),
            result=row.get("result", ""),
            aws_id=row.get("aws_id") or None,
            message=row.get("message", ""),
            seq=order,
            gsi_over="action",
            updated_at=at,
            **_revision_index(row.get("revision", ""), order),
        ),
    }


def schedule_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **schedule_key(row["queue"], row["name"]),
        **item(
            type="schedule",
            queue=row["queue"],
            name=row["name"],
            manifest=row.get("manifest") or None,
            cron=row["cron"],
            timezone=row["timezone"],
            since=float(row["since"]),
            last_tick=None if row.get("last_tick") is None else float(row["last_tick"]),
            active=bool(row.get("active", True)),
        ),
    }


def tick_item(tick: TickRow, *, over: bool) -> dict[str, Any]:
    """A decided tick; ``over``: skipped, or its run is over (retention may delete it)."""
    return {
        **tick_key(tick.queue, tick.name, tick.tick),
        **item(
            type="tick",
            queue=tick.queue,
            name=tick.name,
            tick=tick.tick,
            job_name=tick.job_name,
            outcome=tick.outcome,
            decided_at=tick.decided_at,
            updated_at=tick.decided_at,
            gsi_over="tick" if over else None,
        ),
    }


def open_tick_fields(tick: TickRow) -> dict[str, Any]:
    """What a HEAD carries while the run tick of its job name is not over."""
    return item(
        gsi_open="tick",
        gsi_open_key=f"{tick_sort(tick.tick)}#{tick.queue}#{tick.name}",
        tick_queue=tick.queue,
        tick_name=tick.name,
        tick=tick.tick,
    )


def pass_item(row: dict[str, Any]) -> dict[str, Any]:
    finished = row.get("finished_at")
    return {
        **key(f"PASS#{row['pass_id']}", "PASS"),
        **item(
            type="pass",
            pass_id=row["pass_id"],
            started_at=float(row["started_at"]),
            finished_at=None if finished is None else float(finished),
            revision=row.get("revision", ""),
            result=row.get("result", ""),
            summary=row.get("summary", "{}"),
            gsi_over="pass" if finished is not None else None,
            updated_at=None if finished is None else float(finished),
        ),
    }


# --- items -> records ---
def job(typed: dict[str, Any]) -> JobRecord:
    fields = plain(typed)
    summary = fields.get("array_summary")
    return JobRecord(
        token=fields["token"],
        queue=fields["queue"],
        name=fields["name"],
        manifest=fields.get("manifest", ""),
        spec_hash=fields.get("spec_hash", ""),
        revision=fields.get("revision", ""),
        author=fields.get("author", ""),
        committed_at=fields.get("committed_at", 0.0),
        job_id=fields.get("aws_id"),
        state=fields["state"],
        status=fields.get("status"),
        status_reason=fields.get("status_reason"),
        array_summary=json.loads(summary) if summary else None,
        prune=bool(fields.get("prune", True)),
        is_current="gsi_live" in fields,
        retired=bool(fields.get("retired", False)),
        created_at=fields.get("created_at", 0.0),
        updated_at=fields.get("updated_at", 0.0),
        seen_at=fields.get("seen_at", 0.0),
        missing_since=fields.get("missing_since", 0.0),
    )


def definition(typed: dict[str, Any]) -> DefinitionRecord:
    fields = plain(typed)
    return DefinitionRecord(
        arn=fields["arn"],
        name=fields["name"],
        revision=int(fields["revision"]),
        manifest=fields.get("manifest", ""),
        spec_hash=fields.get("spec_hash", ""),
        commit_sha=fields.get("commit_sha", ""),
        author=fields.get("author", ""),
        prune=bool(fields.get("prune", True)),
        status=fields["status"],
    )


def tick(typed: dict[str, Any]) -> TickRow:
    fields = plain(typed)
    return TickRow(**{column: fields[column] for column in TICK_COLUMNS})


# --- items -> rows (the SQLite schema's columns: controller.state.copy) ---
# item ``type`` -> row table
ROW_TABLES: Final = {
    "meta": "meta",
    "run": "jobs",
    "def": "definitions",
    "schedule": "schedules",
    "tick": "schedule_ticks",
    "action": "actions",
    "pass": "passes",
}
TICK_COLUMNS: Final = ("queue", "name", "tick", "job_name", "outcome", "decided_at")


def job_row(typed: dict[str, Any], *, is_current: bool) -> dict[str, Any]:
    record, fields = job(typed), plain(typed)
    return {
        "token": record.token,
        "queue": record.queue,
        "name": record.name,
        "manifest": record.manifest,
        "spec_hash": record.spec_hash,
        "revision": record.revision,
        "author": record.author,
        "committed_at": record.committed_at,
        "job_id": record.job_id,
        "state": record.state,
        "status": record.status,
        "status_reason": record.status_reason,
        "array_summary": fields.get("array_summary"),
        "prune": int(record.prune),
        "is_current": int(is_current),
        "retired": int(record.retired),
        "message": fields.get("message"),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "seen_at": record.seen_at,
        "missing_since": record.missing_since,
    }


def definition_row(typed: dict[str, Any]) -> dict[str, Any]:
    record, fields = definition(typed), plain(typed)
    return {
        "arn": record.arn,
        "name": record.name,
        "revision": record.revision,
        "manifest": record.manifest,
        "spec_hash": record.spec_hash,
        "commit_sha": record.commit_sha,
        "author": record.author,
        "prune": int(record.prune),
        "status": record.status,
        "created_at": fields.get("created_at", 0.0),
        "updated_at": fields.get("updated_at", 0.0),
    }


def schedule_row(typed: dict[str, Any]) -> dict[str, Any]:
    fields = plain(typed)
    return {
        "queue": fields["queue"],
        "name": fields["name"],
        "manifest": fields.get("manifest", ""),
        "cron": fields["cron"],
        "timezone": fields["timezone"],
        "since": fields["since"],
        "last_tick": fields.get("last_tick"),
        "active": int(bool(fields.get("active", True))),
    }


def action_row(typed: dict[str, Any]) -> dict[str, Any]:
    """An audit action as the SQLite store returns it (``id``: its ``seq``, which sorts)."""
    fields = plain(typed)
    return {
        "id": fields["seq"],
        "pass_id": fields.get("pass_id", ""),
        "at": fields.get("at", 0.0),
        "action": fields.get("action", ""),
        "kind": fields.get("kind", ""),
        "queue": fields.get("queue", ""),
        "name": fields.get("name", ""),
        "manifest": fields.get("manifest", ""),
        "revision": fields.get("revision", ""),
        "author": fields.get("author", ""),
        "committed_at": fields.get("committed_at", 0.0),
        "result": fields.get("result", ""),
        "aws_id": fields.get("aws_id", ""),
        "message": fields.get("message", ""),
    }


def pass_row(typed: dict[str, Any]) -> dict[str, Any]:
    fields = plain(typed)
    return {
        "pass_id": fields["pass_id"],
        "started_at": fields.get("started_at", 0.0),
        "finished_at": fields.get("finished_at"),
        "revision": fields.get("revision", ""),
        "result": fields.get("result", ""),
        "summary": fields.get("summary", "{}"),
    }
