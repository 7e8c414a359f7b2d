"""Rebuild a lost ledger from the tags in AWS, and refuse to run blind without one.

Every job and definition the controller creates carries its ledger entry in its
tags (``batch-gitops/manifest``, ``revision``, ``spec-hash``, ``author``,
``submission``), so a ledger can be rebuilt from what AWS still lists:

* jobs: ListJobs for every status in each queue (the queues the manifests use,
  or given), DescribeJobs for the tags, only jobs tagged
  ``batch-gitops/managed-by=<controller id>``; per ``(queue, name)`` the runs
  are recorded oldest first, so the newest becomes the current run;
* definitions: DescribeJobDefinitions (all statuses), only those tagged ours.

It can only lose what AWS has already forgotten (finished jobs after about a
week): such a key looks new and would run again. Called by
``batch-gitops ledger rebuild`` (:mod:`controller.cli.ledger`).

For a pull request's plan in CI, where the controller's own ledger is not at
hand, ``assume_applied`` closes that gap the other way: every job of the target
branch that AWS no longer lists is recorded as run and forgotten, with the
target branch's spec hash, so the plan shows what the pull request changes and
not every job AWS forgot. Such a ledger is marked (:data:`ASSUMED_META`) and a
pass refuses to apply with it: it is a planning aid, not a record of what ran.

:func:`ledger_loss` is the other half: a pass on an *empty* ledger first checks
that AWS holds no managed jobs in the queues it is about to submit to; if it
does, the ledger was lost (or ``--state`` points elsewhere) and submitting would
duplicate every job, so the pass stops and says to rebuild.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from controller.aws.batch import BatchApi, Rejected
from controller.model.desired import DesiredState
from controller.model.jobstatus import ALL_STATUSES, FORGOTTEN
from controller.model.records import Provenance
from controller.model.tags import (
    AUTHOR_TAG,
    MANAGED_BY_TAG,
    MANIFEST_TAG,
    REVISION_TAG,
    SPEC_HASH_TAG,
    SUBMISSION_TAG,
    is_managed,
)
from controller.progress import DEFAULT_INTERVAL, Progress
from controller.state.ledger import Ledger

log = structlog.get_logger(__name__)

# Ledger meta key: set (to the target revision) on a ledger rebuilt with assume_applied.
ASSUMED_META = "assumed_applied"


class LedgerNotEmpty(Exception):
    """Rebuilding into a ledger that already has records would mix two histories."""


@dataclass
class RebuildResult:
    queues: list[str] = field(default_factory=list)
    listed: int = 0  # jobs AWS listed in those queues
    jobs: int = 0  # managed runs recorded
    keys: int = 0  # distinct (queue, name)
    definitions: int = 0  # managed definition revisions recorded
    assumed: int = 0  # jobs of the target revision AWS no longer lists, assumed run

    def as_dict(self) -> dict[str, Any]:
        return {
            "queues": self.queues,
            "listed": self.listed,
            "jobs": self.jobs,
            "keys": self.keys,
            "definitions": self.definitions,
            "assumed": self.assumed,
        }


def managed_jobs(
    api: BatchApi,
    queues: Iterable[str],
    controller_id: str,
    *,
    first_only: bool = False,
    progress_interval: float = DEFAULT_INTERVAL,
) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Jobs AWS lists in ``queues`` (every status) that carry our managed-by tag.

    Returns ``([(queue as given, job described)], jobs listed)``: the queue is kept as
    the manifests spell it (name or ARN), because that is the ledger's key.
    ``first_only`` stops at the first managed job found (enough to prove a ledger was
    lost). Raises BatchError.
    """
    found: list[tuple[str, dict[str, Any]]] = []
    listed = 0
    for queue in sorted(set(queues)):
        ids: dict[str, None] = {}
        try:
            for status in ALL_STATUSES:
                for summary in api.list_jobs(queue, status=status):
                    if ":" not in summary["jobId"]:  # array children carry no tags
                        ids[summary["jobId"]] = None
        except Rejected as exc:
            # No such queue (a manifest's typo): it holds none of our jobs. Its jobs will
            # be rejected by SubmitJob and reported there.
            log.warning("queue_not_scanned", queue=queue, error=str(exc))
            continue
        listed += len(ids)
        pending = list(ids)
        # Jobs described in this queue (100 per call): a queue of 50,000 takes a while.
        progress = Progress("rebuild_progress", len(pending), progress_interval)
        for start in range(0, len(pending), 100):
            chunk = pending[start : start + 100]
            for job in api.describe_jobs(chunk):
                if is_managed(job.get("tags"), controller_id):
                    found.append((queue, job))
            if first_only and found:
                return found, listed
            progress.advance(len(chunk), queue=queue)
    return found, listed


def adopt_job(ledger: Ledger, key: tuple[str, str], job: dict[str, Any], *, prune: bool) -> str:
    """Record a job found in AWS as its key's current run, from its tags; its token."""
    tags = job.get("tags") or {}
    token = str(tags.get(SUBMISSION_TAG) or f"adopted-{job['jobId']}")
    ledger.record_intent(
        token=token,
        queue=key[0],
        name=key[1],
        manifest=tags.get(MANIFEST_TAG, ""),
        spec_hash=tags.get(SPEC_HASH_TAG, ""),
        prune=prune,
        provenance=Provenance(
            tags.get(REVISION_TAG, ""),
            tags.get(AUTHOR_TAG, ""),
            int(job.get("createdAt", 0)) / 1000,
        ),
    )
    ledger.record_submitted(token, str(job["jobId"]), str(job.get("status") or "SUBMITTED"))
    return token


def rebuild(
    api: BatchApi,
    ledger: Ledger,
    queues: Iterable[str],
    controller_id: str,
    desired: DesiredState | None = None,
    *,
    assume_applied: str | None = None,
    plans_only: bool = True,
    progress_interval: float = DEFAULT_INTERVAL,
) -> RebuildResult:
    """Fill an empty ledger from AWS tags. Raises LedgerNotEmpty or BatchError.

    ``assume_applied``: the revision ``desired`` was read from; its jobs that AWS no
    longer lists are recorded as run and forgotten (for plans only, see above).
    """
    if not ledger.is_empty():
        raise LedgerNotEmpty(
            f"{ledger.location}: the ledger already holds records; rebuild only into a new file "
            "(move this one aside first, or pass another --state)"
        )
    result = RebuildResult(queues=sorted(set(queues)))
    jobs, result.listed = managed_jobs(
        api, result.queues, controller_id, progress_interval=progress_interval
    )
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for queue, job in jobs:
        if not (job.get("tags") or {}).get(SPEC_HASH_TAG):
            # Without its spec hash the next pass would see a change and run it again.
            log.warning("job_not_rebuilt", job_id=job["jobId"], reason="no spec-hash tag")
            continue
        runs.setdefault((queue, str(job["jobName"])), []).append(job)
    for key, history in sorted(runs.items()):
        want = desired.jobs.get(key) if desired is not None else None
        for job in sorted(history, key=lambda j: int(j.get("createdAt", 0))):
            # A removed manifest's options are unknown: never stop what we cannot vouch for.
            adopt_job(ledger, key, job, prune=want.options.prune if want else False)
            result.jobs += 1
        result.keys += 1
    for definition in api.describe_job_definitions(status=None):
        tags = definition.get("tags") or {}
        if not is_managed(tags, controller_id) or not tags.get(SPEC_HASH_TAG):
            continue
        name = str(definition["jobDefinitionName"])
        want_definition = desired.definitions.get(name) if desired is not None else None
        ledger.record_definition(
            arn=str(definition["jobDefinitionArn"]),
            name=name,
            revision=int(definition["revision"]),
            manifest=tags.get(MANIFEST_TAG, ""),
            spec_hash=tags.get(SPEC_HASH_TAG, ""),
            prune=want_definition.options.prune if want_definition is not None else False,
            provenance=Provenance(tags.get(REVISION_TAG, ""), tags.get(AUTHOR_TAG, "")),
        )
        if definition.get("status") == "INACTIVE":
            ledger.record_deregistered(str(definition["jobDefinitionArn"]))
        result.definitions += 1
    if assume_applied is not None and desired is not None:
        result.assumed = _assume_applied(
            ledger, desired, set(runs), assume_applied, plans_only=plans_only
        )
    ledger.set_meta("rebuilt_from_aws", ",".join(result.queues))
    log.info("ledger_rebuilt", **result.as_dict())
    return result


def _assume_applied(
    ledger: Ledger,
    desired: DesiredState,
    found: set[tuple[str, str]],
    revision: str,
    *,
    plans_only: bool = True,
) -> int:
    """Record each job of ``desired`` without a run in AWS as run and forgotten.

    ``plans_only``: mark the ledger so no pass applies with it (a pull request's plan
    in CI); otherwise it is the controller's own ledger, recovered (``--recover``).
    """
    assumed = 0
    for key, want in sorted(desired.jobs.items()):
        if key in found:
            continue
        token = f"assumed:{key[0]}/{key[1]}"
        ledger.record_intent(
            token=token,
            queue=key[0],
            name=key[1],
            manifest=want.manifest,
            spec_hash=want.spec_hash,
            prune=False,
            provenance=Provenance(revision),
        )
        ledger.record_submitted(token, token, FORGOTTEN)
        assumed += 1
    if plans_only:
        ledger.set_meta(ASSUMED_META, revision)
    return assumed


def assumed_ledger(ledger: Ledger) -> str:
    """Why this ledger must not be applied with ('' if it may): see ``assume_applied``."""
    revision = ledger.get_meta(ASSUMED_META)
    if not revision:
        return ""
    return (
        f"{ledger.location} was rebuilt with --assume-applied (from {revision[:12]}) for plans: "
        "it records jobs as run that may never have run, so nothing is applied with it. "
        "Rebuild the controller's ledger without --assume-applied."
    )


def ledger_loss(
    api: BatchApi, ledger: Ledger, desired: DesiredState, controller_id: str, state: str
) -> str:
    """Why this pass must not run on an empty ledger, or '' if it may (BatchError if unsure).

    Every trace AWS keeps counts: managed job definitions (AWS never forgets an ACTIVE
    definition) and managed jobs in the queues the pass would submit to (AWS forgets
    finished ones after about a week). Either proves a ledger existed: it was lost, or
    another repository uses this controller id.
    """
    if not (desired.jobs or desired.definitions) or not ledger.is_empty():
        return ""
    evidence, manifest = "", ""
    if desired.jobs:  # a job names its manifest: it tells "lost" from "another repository"
        queues = {key[0] for key in desired.jobs}
        found, _ = managed_jobs(api, queues, controller_id, first_only=True)
        if found:
            queue, example = found[0]
            evidence = f"job {example['jobName']} {example['jobId']} in {queue}"
            manifest = str((example.get("tags") or {}).get(MANIFEST_TAG, ""))
    if not evidence:  # AWS forgot the jobs; it never forgets an ACTIVE definition
        for definition in api.describe_job_definitions(status="ACTIVE"):
            tags = definition.get("tags") or {}
            if is_managed(tags, controller_id):
                evidence = f"job definition {definition.get('jobDefinitionArn')}"
                manifest = str(tags.get(MANIFEST_TAG, ""))
                break
    if not evidence:
        return ""
    seen = (
        f"{state}: the ledger is empty, but AWS Batch already holds resources tagged "
        f"{MANAGED_BY_TAG}={controller_id} (e.g. {evidence}, from manifest {manifest or '?'}), "
        "and submitting now could run every job again (including those AWS has already "
        "forgotten)."
    )
    recover = (
        "the ledger was lost or --state points at the wrong place: restore it from a backup "
        "(`batch-gitops ledger backup`), or recover it with `batch-gitops ledger rebuild "
        f"--recover --state {state}` (same --repo: jobs AWS no longer lists are recorded as "
        "already run), then reconcile"
    )
    other_repo = (
        "another repository's controller uses the same controller id: give this one its "
        "own with --controller-id (BATCH_GITOPS_CONTROLLER_ID), since each id only ever "
        "touches its own jobs"
    )
    ours = {job.manifest for job in desired.jobs.values()}
    ours |= {d.manifest for d in desired.definitions.values()} | desired.invalid_paths
    if manifest and manifest not in ours:  # not a file of this repository
        return f"{seen} If {manifest} is not in this repository, {other_repo}. Otherwise {recover}."
    return f"{seen} Most likely {recover}. If it comes from another repository, {other_repo}."
