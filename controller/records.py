"""What the ledger remembers, as plain values (pure: the planner reads these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobRecord:
    token: str
    queue: str
    name: str
    manifest: str
    spec_hash: str
    revision: str
    author: str
    committed_at: float
    job_id: str | None
    state: str
    status: str | None
    status_reason: str | None
    array_summary: dict[str, int] | None
    prune: bool
    is_current: bool
    retired: bool
    created_at: float
    updated_at: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.queue, self.name)


@dataclass(frozen=True)
class DefinitionRecord:
    arn: str
    name: str
    revision: int
    manifest: str
    spec_hash: str
    commit_sha: str
    author: str
    prune: bool
    status: str


@dataclass(frozen=True)
class Provenance:
    """Which commit asked for an action."""

    revision: str
    author: str = ""
    committed_at: float = 0.0
