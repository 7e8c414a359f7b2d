"""Ledger + Batch -> ObservedState of the resources the controller owns.

Two steps, both through the adapter:

1. ``settle_intents``: every submission whose outcome the ledger does not know
   (crash between SubmitJob and the ledger write, a reply lost on the wire) is
   looked up by name (ListJobs ``JOB_NAME``) and matched on its unique
   ``batch-gitops/submission`` tag (DescribeJobs). Found: adopted. Not found:
   marked lost, so the planner may submit again. AWS unreachable: left open,
   and the key stays *unknown* (never treated as missing).
2. ``observe``: DescribeJobs (100 ids a call) for the current runs the ledger
   still believes active; finished runs are not read again. A run AWS does not
   return is *not visible yet* (AWS lists new jobs late): it keeps its last status
   and is read again next pass, never taken for finished. A failed read leaves
   it unknown.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

import structlog

from controller import metrics
from controller.aws.batch import BatchApi, BatchError
from controller.model.desired import JobKey
from controller.model.jobstatus import ACTIVE_STATUSES
from controller.model.plan import ObservedJob, ObservedState
from controller.model.records import JobRecord, StatusUpdate
from controller.model.tags import SUBMISSION_TAG
from controller.state.ledger import Ledger

log = structlog.get_logger(__name__)


@dataclass
class SettleResult:
    adopted: int = 0
    lost: int = 0
    unknown: int = 0

    def count(self, record: JobRecord, outcome: str, event: str, **fields: object) -> None:
        """One intent settled as ``outcome`` (adopted, lost, unknown): counter, metric and
        log event (a warning when the outcome is unknown for a reason worth a look)."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        metrics.INTENTS_SETTLED.labels(outcome=outcome).inc()
        loud = event in ("intent_unsettled", "intent_unsettleable")
        (log.warning if loud else log.info)(
            event,
            queue=record.queue,
            job_name=record.name,
            submission=record.token,
            **fields,
        )


def settle_intents(
    api: BatchApi, ledger: Ledger, *, grace: float = 0.0, horizon: float = 7 * 86400.0
) -> SettleResult:
    """Adopt or close every open intent.

    ``grace``: seconds a young intent that AWS does not list yet stays open (ListJobs can
    lag a SubmitJob it already accepted). ``horizon``: AWS's retention of finished jobs;
    an intent older than that which AWS does not list may have run and been forgotten,
    so it is never called lost (its key waits, and the log says so).
    """
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
            result.count(record, "unknown", "intent_unsettled", error=str(exc))
            continue
        if found:
            job = found[0]
            ledger.record_submitted(record.token, job["jobId"], job.get("status", "SUBMITTED"))
            result.count(record, "adopted", "intent_adopted", job_id=job["jobId"])
        elif now - record.created_at < grace:
            # Too young to call lost: it may be accepted but not listed yet. Its key
            # stays unknown (the planner waits) until the next pass looks again.
            result.count(record, "unknown", "intent_too_young", grace_seconds=grace)
        elif now - record.created_at >= horizon:
            # Not found, but old enough that a job it made could have finished and aged
            # out of AWS: "not listed" proves nothing. Never resubmit on that evidence.
            result.count(
                record,
                "unknown",
                "intent_unsettleable",
                age_days=round((now - record.created_at) / 86400, 1),
                horizon_days=round(horizon / 86400, 1),
            )
        else:
            ledger.record_outcome(record.token, "lost", "not found in AWS when settled")
            result.count(record, "lost", "intent_lost")
    return result


@dataclass
class Refresh:
    """One read of the runs the ledger believes active."""

    statuses: dict[str, str] = field(default_factory=dict)  # fresh, by job id
    unreadable: set[str] = field(default_factory=set)  # the read failed: unknown
    not_visible: set[str] = field(default_factory=set)  # AWS did not return them


def refresh_statuses(
    api: BatchApi,
    ledger: Ledger,
    current: dict[JobKey, JobRecord] | None = None,
    *,
    record: bool = True,
) -> Refresh:
    """Read the AWS status of every current run the ledger thinks active.

    ``current`` is ``ledger.current_jobs()`` if the caller already read it (one read
    of the jobs table per pass: it is the largest table). A run AWS does not return is
    *not visible*: AWS lists a new job late (seconds), and only finished jobs age out,
    so a run last seen active keeps its last status and is read again next time —
    it is never taken for finished. ``record``: write what was read to the ledger
    (a dry run's ``plan`` only reads).
    """
    records = (current if current is not None else ledger.current_jobs()).values()
    ids = [
        r.job_id
        for r in records
        if r.state == "submitted" and r.job_id and r.status in ACTIVE_STATUSES
    ]
    refresh = Refresh()
    updates: list[StatusUpdate] = []
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        try:
            jobs = api.describe_jobs(chunk)
        except BatchError as exc:
            refresh.unreadable.update(chunk)
            log.warning("describe_failed", jobs=len(chunk), error=str(exc))
            continue
        seen = {job["jobId"]: job for job in jobs}
        for job_id in chunk:
            job = seen.get(job_id)
            if job is None:
                refresh.not_visible.add(job_id)
                updates.append(StatusUpdate(job_id, seen=False))
                continue
            status = str(job.get("status"))
            refresh.statuses[job_id] = status
            summary = (job.get("arrayProperties") or {}).get("statusSummary")
            updates.append(
                StatusUpdate(
                    job_id,
                    seen=True,
                    status=status,
                    reason=job.get("statusReason"),
                    array_summary=json.dumps(summary) if summary else None,
                )
            )
    if refresh.not_visible:
        log.info("jobs_not_visible_yet", jobs=len(refresh.not_visible))
    if record:
        ledger.update_statuses(updates, time.time())
    return refresh


def observe(api: BatchApi, ledger: Ledger, *, record: bool = True) -> ObservedState:
    """The observed side of the plan: every key's current run, with a status read now
    (active runs), remembered (finished runs), or unknown (the read failed)."""
    current = ledger.current_jobs()
    refresh = refresh_statuses(api, ledger, current, record=record)
    state = ObservedState(definitions=ledger.active_definitions())
    now = time.time()
    for key, run in current.items():
        visible = True
        if run.job_id in refresh.unreadable:
            status = None
        elif run.job_id in refresh.statuses:
            status = refresh.statuses[run.job_id]
            if run.status != status:  # as the ledger now says, without re-reading it
                run = dataclasses.replace(run, status=status, missing_since=0.0)
        elif run.job_id in refresh.not_visible:
            status = run.status  # the last status seen: late is not gone
            visible = False
            if not run.missing_since:
                run = dataclasses.replace(run, missing_since=now)
        else:
            status = run.status  # finished earlier: the ledger remembers
        state.jobs[key] = ObservedJob(record=run, status=status, visible=visible)
    return state
