"""Catch up this replica's ledger with what another replica did while it led.

Called by :mod:`controller.service.daemon` on the first pass after this replica takes the
lease (``run_pass(..., before_observe=...)``), after open intents are settled and
before the ledger is turned into observed state. Each replica has its own
ledger; without this step a new leader would see the old leader's jobs as
missing and submit them again.

For every queue the desired state or the ledger names, every job AWS still
lists (all statuses) is read; for each job name, the newest run tagged
``managed-by=<controller id>`` that this ledger does not know becomes the
current run of that key unless the ledger's own current run is newer. The
tags carry everything the ledger needs (manifest, revision, spec hash, author,
submission token). Definitions need nothing here: ``apply`` already adopts the
newest managed revision with the same spec hash instead of registering again.

What AWS has forgotten (finished jobs older than about a week) cannot be
caught up: a key whose only run is that old and unknown here would be
submitted again. Keep the lease with replicas that fail over well within that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from controller.aws.batch import BatchApi
from controller.model.desired import DesiredState
from controller.model.jobstatus import ACTIVE_STATUSES, TERMINAL_STATUSES
from controller.model.tags import (
    REVISION_TAG,
    SPEC_HASH_TAG,
    SUBMISSION_TAG,
    is_managed,
)
from controller.state.ledger import Ledger
from controller.state.rebuild import adopt_job

log = structlog.get_logger(__name__)

ALL_STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES


@dataclass
class CatchUp:
    queues: int = 0
    listed: int = 0
    adopted: int = 0


def catch_up(api: BatchApi, ledger: Ledger, desired: DesiredState, controller_id: str) -> CatchUp:
    """Adopt the newest managed run of every key that another replica submitted.

    Raises :class:`BatchError` when AWS cannot be read: the caller must then not
    plan (a blind new leader would resubmit).
    """
    result = CatchUp()
    current = ledger.current_jobs()
    known_ids = {r.job_id for r in ledger.jobs() if r.job_id}
    known_tokens = {r.token for r in ledger.jobs()}
    queues = {key[0] for key in desired.jobs} | {key[0] for key in current}
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    created: dict[str, int] = {}
    for queue in sorted(queues):
        result.queues += 1
        summaries: dict[str, dict[str, Any]] = {}
        for status in ALL_STATUSES:
            for summary in api.list_jobs(queue, status=status):
                if ":" not in summary["jobId"]:  # array children carry no tags
                    summaries[summary["jobId"]] = summary
        result.listed += len(summaries)
        created.update({i: int(s.get("createdAt", 0)) for i, s in summaries.items()})
        unknown = [i for i in summaries if i not in known_ids]
        for job in api.describe_jobs(unknown) if unknown else []:
            tags = job.get("tags") or {}
            if not is_managed(tags, controller_id) or tags.get(SPEC_HASH_TAG) is None:
                continue
            key = (queue, str(job["jobName"]))
            if key not in newest or int(job.get("createdAt", 0)) > int(
                newest[key].get("createdAt", 0)
            ):
                newest[key] = job
    for key, job in sorted(newest.items()):
        tags = job.get("tags") or {}
        token = tags.get(SUBMISSION_TAG) or f"adopted-{job['jobId']}"
        if token in known_tokens:
            continue  # our own open intent: settle_intents owns it
        mine = current.get(key)
        if (
            mine is not None
            and mine.job_id
            and created.get(mine.job_id, 0) > int(job.get("createdAt", 0))
        ):
            continue  # our current run is the newer one
        want = desired.jobs.get(key)
        # Unknown intent for a removed manifest: never stop what we cannot vouch for.
        adopt_job(ledger, key, job, prune=want.options.prune if want is not None else False)
        result.adopted += 1
        log.info(
            "job_adopted_from_previous_leader",
            queue=key[0],
            job_name=key[1],
            job_id=job["jobId"],
            revision=tags.get(REVISION_TAG),
        )
    return result
