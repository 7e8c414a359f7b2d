"""Ledger + Batch -> ObservedState of the resources the controller owns.

Two steps, both through the adapter:

1. ``settle_intents``: every submission whose outcome the ledger does not know
   (crash between SubmitJob and the ledger write, a reply lost on the wire) is
   looked up by name (ListJobs ``JOB_NAME``) and matched on its unique
   ``batch-gitops/submission`` tag (DescribeJobs). Found: adopted. Not found:
   marked lost, so the planner may submit again. AWS unreachable: left open,
   and the key stays *unknown* (never treated as missing).
2. ``observe``: DescribeJobs (100 ids a call) for the current runs the ledger
   still believes active; finished runs are not read again. A job AWS has
   forgotten is recorded as FORGOTTEN; a failed read leaves it unknown.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import structlog

from controller import metrics
from controller.aws.batch import BatchApi, BatchError
from controller.model.desired import JobKey
from controller.model.jobstatus import ACTIVE_STATUSES, FORGOTTEN
from controller.model.plan import ObservedJob, ObservedState
from controller.model.records import JobRecord
from controller.model.tags import SUBMISSION_TAG
from controller.state.ledger import Ledger

log = structlog.get_logger(__name__)


@dataclass
class SettleResult:
    adopted: int = 0
    lost: int = 0
    unknown: int = 0


def settle_intents(api: BatchApi, ledger: Ledger, *, grace: float = 0.0) -> SettleResult:
    """Adopt or close every open intent; ``grace``: seconds a young intent that AWS does
    not list yet stays open (ListJobs can lag a SubmitJob it already accepted)."""
    result = SettleResult()
    now = time.time()
    for record in ledger.open_intents():
        try:
            summaries = api.list_jobs(record.queue, name=record.name)
            ids = [s["jobId"] for s in summaries if s.get("jobName") == record.name]
            found = [
                job
                for job in (api.describe_jobs(ids) if ids else [])
                if (job.get("tags") or {}).get(SUBMISSION_TAG) == record.token
            ]
        except BatchError as exc:
            result.unknown += 1
            metrics.INTENTS_SETTLED.labels(outcome="unknown").inc()
            log.warning(
                "intent_unsettled",
                queue=record.queue,
                job_name=record.name,
                submission=record.token,
                error=str(exc),
            )
            continue
        if found:
            job = found[0]
            ledger.record_submitted(record.token, job["jobId"], job.get("status", "SUBMITTED"))
            result.adopted += 1
            metrics.INTENTS_SETTLED.labels(outcome="adopted").inc()
            log.info(
                "intent_adopted",
                queue=record.queue,
                job_name=record.name,
                job_id=job["jobId"],
                submission=record.token,
            )
        elif now - record.created_at < grace:
            # Too young to call lost: it may be accepted but not listed yet. Its key
            # stays unknown (the planner waits) until the next pass looks again.
            result.unknown += 1
            metrics.INTENTS_SETTLED.labels(outcome="unknown").inc()
            log.info(
                "intent_too_young",
                queue=record.queue,
                job_name=record.name,
                submission=record.token,
                grace_seconds=grace,
            )
        else:
            ledger.record_outcome(record.token, "lost", "not found in AWS when settled")
            result.lost += 1
            metrics.INTENTS_SETTLED.labels(outcome="lost").inc()
            log.info(
                "intent_lost", queue=record.queue, job_name=record.name, submission=record.token
            )
    return result


def refresh_statuses(
    api: BatchApi, ledger: Ledger, current: dict[JobKey, JobRecord] | None = None
) -> tuple[dict[str, str], set[str]]:
    """Read the AWS status of every current run the ledger thinks active.

    ``current`` is ``ledger.current_jobs()`` if the caller already read it (one read
    of the jobs table per pass: it is the largest table). Returns ``(status by job id,
    ids that could not be read)``.
    """
    records = (current if current is not None else ledger.current_jobs()).values()
    ids = [
        r.job_id
        for r in records
        if r.state == "submitted" and r.job_id and r.status in ACTIVE_STATUSES
    ]
    statuses: dict[str, str] = {}
    unreadable: set[str] = set()
    updates: list[tuple[str, str, str | None, str | None]] = []
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        try:
            jobs = api.describe_jobs(chunk)
        except BatchError as exc:
            unreadable.update(chunk)
            log.warning("describe_failed", jobs=len(chunk), error=str(exc))
            continue
        seen = {job["jobId"]: job for job in jobs}
        for job_id in chunk:
            job = seen.get(job_id)
            if job is None:
                statuses[job_id] = FORGOTTEN
                updates.append((job_id, FORGOTTEN, "AWS no longer knows this job", None))
                continue
            status = str(job.get("status"))
            statuses[job_id] = status
            summary = (job.get("arrayProperties") or {}).get("statusSummary")
            updates.append(
                (job_id, status, job.get("statusReason"), json.dumps(summary) if summary else None)
            )
    ledger.update_statuses(updates)
    return statuses, unreadable


def observe(api: BatchApi, ledger: Ledger) -> ObservedState:
    current = ledger.current_jobs()
    statuses, unreadable = refresh_statuses(api, ledger, current)
    state = ObservedState(definitions=ledger.active_definitions())
    for key, record in current.items():
        if record.job_id in unreadable:
            status = None
        elif record.job_id in statuses:
            status = statuses[record.job_id]
            if record.status != status:  # as the ledger now says, without re-reading it
                record = dataclasses.replace(record, status=status)
        else:
            status = record.status  # finished earlier: the ledger remembers
        state.jobs[key] = ObservedJob(record=record, status=status)
    return state
