"""The audit trail, read back from the ledger: commit -> jobs, manifest -> history, job -> commit.

Every action the controller takes is a row of the ledger's ``actions`` table
(pass, time, action, kind, queue, name, manifest, commit SHA, author, commit
time, result, AWS id, message), and every run it submitted is a row of
``jobs`` (with the commit, author and manifest that caused it). This module
only reads them; ``controller.cli.history`` prints what it returns.

Filters combine (AND): ``commit`` is a SHA or a prefix of one, ``manifest`` a
repository-relative path, ``job`` an AWS job ID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.model.records import JobRecord
from controller.state.ledger import Ledger

MIN_COMMIT_PREFIX = 4


class HistoryQueryError(ValueError):
    """The query cannot be answered as asked; the message says what to change."""


def iso(timestamp: float) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@dataclass
class History:
    """What the ledger knows for one query: runs it submitted and actions it took."""

    commit: str | None
    manifest: str | None
    job: str | None
    runs: list[JobRecord] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.runs and not self.actions

    def describe_filters(self) -> str:
        parts = [
            f"{label} {value}"
            for label, value in (
                ("commit", self.commit),
                ("manifest", self.manifest),
                ("job", self.job),
            )
            if value
        ]
        return ", ".join(parts) or "any"

    def as_dict(self) -> dict[str, Any]:
        return {
            "filters": {"commit": self.commit, "manifest": self.manifest, "job": self.job},
            "runs": [run_as_dict(run) for run in self.runs],
            "actions": [action_as_dict(action) for action in self.actions],
        }


def run_as_dict(run: JobRecord) -> dict[str, Any]:
    return {
        "job_id": run.job_id,
        "queue": run.queue,
        "name": run.name,
        "manifest": run.manifest,
        "commit": run.revision,
        "author": run.author,
        "committed_at": iso(run.committed_at),
        "submitted_at": iso(run.created_at),
        "state": run.state,
        "status": run.status,
        "status_reason": run.status_reason,
        "current": run.is_current,
        "removed": run.retired,
    }


def action_as_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": iso(float(row["at"])),
        "pass_id": row["pass_id"],
        "action": row["action"],
        "kind": row["kind"],
        "queue": row["queue"] or None,
        "name": row["name"],
        "manifest": row["manifest"],
        "commit": row["revision"],
        "author": row["author"],
        "committed_at": iso(float(row["committed_at"] or 0)),
        "result": row["result"],
        "aws_id": row["aws_id"] or None,
        "message": row["message"] or None,
    }


def query_history(
    ledger: Ledger,
    *,
    commit: str | None = None,
    manifest: str | None = None,
    job: str | None = None,
    limit: int = 1000,
) -> History:
    """Runs and actions matching every given filter, oldest first (the last ``limit`` of each)."""
    commit = (commit or "").strip().lower() or None
    manifest = (manifest or "").strip().removeprefix("./") or None
    job = (job or "").strip() or None
    if commit is not None and (
        len(commit) < MIN_COMMIT_PREFIX or any(c not in "0123456789abcdef" for c in commit)
    ):
        raise HistoryQueryError(
            f"--commit {commit!r}: give a commit SHA or a prefix of at least "
            f"{MIN_COMMIT_PREFIX} hex digits (git rev-parse HEAD prints one)"
        )
    history = History(commit=commit, manifest=manifest, job=job)

    if job is not None:
        found = ledger.job_by_id(job)
        candidates = [found] if found is not None else []
    else:
        candidates = ledger.jobs_matching(revision_prefix=commit, manifest=manifest)
    history.runs = [
        run
        for run in candidates
        if (commit is None or run.revision.startswith(commit))
        and (manifest is None or run.manifest == manifest)
        and (job is None or run.job_id == job)
    ][-limit:]

    # An action on a job names it by its AWS id; a job's submit and any later cancel or
    # terminate carry the same id, so --job finds them all.
    actions = ledger.actions(revision=commit, manifest=manifest, aws_id=job, limit=1_000_000)
    history.actions = actions[-limit:]
    return history
