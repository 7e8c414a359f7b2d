"""Whether a one-shot pass really read AWS Batch, so no command says "in sync" blind.

A pass over a ledger whose jobs have all finished makes no AWS call at all, and a
pass whose reads failed falls back to what the ledger remembers. ``plan`` and
``reconcile`` wrap the adapter in :class:`WatchedBatch` (it forwards every call
and notes whether AWS answered), and :func:`confirm_reachable` makes one small
read when the pass made none (ListJobs filtered by one job's name, or
DescribeJobDefinitions of one definition). :func:`pass_summary` then turns an
unreadable AWS into an error of the pass result. Used by ``controller.cli.main``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from controller.aws.batch import BatchApi, BatchError, Rejected
from controller.model.desired import DesiredState


@dataclass
class WatchedBatch:
    """Forwards to the adapter; counts calls AWS answered and keeps unreachable errors."""

    api: BatchApi
    answered: int = 0
    failures: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.api, name)
        if not callable(target):
            return target
        read = name.startswith(("describe_", "list_"))  # a failed write is an action result

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                value = target(*args, **kwargs)
            except Rejected:  # AWS answered (no such queue, a refused request)
                self.answered += 1
                raise
            except BatchError as exc:  # throttled after retries, 5xx, network
                if read:
                    self.failures.append(str(exc))
                raise
            self.answered += 1
            return value

        return call

    def as_api(self) -> BatchApi:
        return cast(BatchApi, self)


def confirm_reachable(watched: WatchedBatch, desired: DesiredState | None) -> None:
    """One small read when the pass made no AWS call and has something to compare."""
    if watched.answered or watched.failures or desired is None:
        return
    api = watched.as_api()
    try:
        if desired.jobs:
            queue, name = sorted(desired.jobs)[0]
            api.list_jobs(queue, name=name)
        elif desired.definitions:
            api.describe_job_definitions(name=sorted(desired.definitions)[0])
    except BatchError:
        pass  # recorded by the wrapper: Rejected is an answer, the rest a failure


def pass_summary(result: Any, watched: WatchedBatch, ledger: str) -> dict[str, Any]:
    """``PassResult.as_dict()`` plus ``ledger`` and ``aws_read``; a pass whose AWS reads
    failed is an ``error`` (its plan rests on what the ledger remembered)."""
    data: dict[str, Any] = result.as_dict()
    data["ledger"] = ledger
    data["aws_read"] = bool(watched.answered) and not watched.failures
    if watched.failures and data["result"] in ("ok", "degraded"):
        data["result"] = "error"
        data["message"] = (
            f"AWS Batch could not be read ({watched.failures[0]}); what the ledger "
            "remembers is not enough to call this in sync"
        )
    return data
