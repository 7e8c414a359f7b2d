"""Execute a plan: one ActionResult per action, one failure never hides the others.

Order: register definitions, stop replaced runs, submit jobs in dependency
waves (independent jobs of a wave concurrently, under the adapter's rate
limit), then prune (cancel/terminate, then deregister).

Every submit is an intent in the ledger *before* SubmitJob, carrying a unique
``batch-gitops/submission`` tag; the job ID is written after. Every stop
re-reads the job first (the plan may be stale), refuses anything that does not
carry our ``managed-by`` tag, escalates CancelJob to TerminateJob when the job
has started (CancelJob is a no-op there), and verifies the outcome.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from controller import metrics
from controller.aws.batch import (
    BatchApi,
    BatchError,
    OutcomeUnknown,
    Registered,
    Rejected,
    Transient,
)
from controller.model.desired import DesiredState, JobKey
from controller.model.jobstatus import ACTIVE_STATUSES, QUEUED_STATUSES
from controller.model.plan import Action, Plan
from controller.model.records import Fence, Provenance
from controller.model.tags import SPEC_HASH_TAG, is_managed, ownership_tags
from controller.progress import DEFAULT_INTERVAL, Progress
from controller.state.ledger import WRITES_SENT_META, ClaimConflict, Ledger

log = structlog.get_logger(__name__)

# "deferred": not attempted because the pass's time budget ran out; the next pass plans
# it again (nothing was recorded, nothing was sent).
Result = Literal["ok", "failed", "skipped", "unknown", "stopping", "deferred"]
VERIFY_TIMEOUT = 3.0
REGISTER_ATTEMPTS = 3


@dataclass
class ActionResult:
    action: Action
    result: Result
    aws_id: str = ""
    message: str = ""

    def as_dict(self) -> dict[str, str]:
        out = self.action.as_dict()
        out.update(result=self.result, message=self.message)
        if self.aws_id:
            out["id"] = self.aws_id
        return out


@dataclass
class Applier:
    api: BatchApi
    ledger: Ledger
    provenance: Provenance
    controller_id: str
    pass_id: str
    concurrency: int = 8
    verify_timeout: float = VERIFY_TIMEOUT
    # time.monotonic() after which no new AWS write starts (Settings.max_pass_seconds).
    deadline: float | None = None
    # Per manifest path, the commit that last changed (or removed) it: who asked for the
    # action. Paths without one fall back to ``provenance``, the head being applied.
    causes: dict[str, Provenance] = field(default_factory=dict)
    results: list[ActionResult] = field(default_factory=list)
    _submitted: dict[JobKey, str] = field(default_factory=dict)
    _failed_keys: set[JobKey] = field(default_factory=set)
    _failed_definitions: set[str] = field(default_factory=set)
    _writes_started: int = 0
    # Seconds between ``apply_progress`` events on a long pass (Settings.progress_interval).
    progress_interval: float = DEFAULT_INTERVAL
    _progress: Progress | None = None
    # The writer's fencing token (shared store), checked with every claim it writes.
    fence: Fence | None = None
    _writes_marked: bool = False

    def cause(self, manifest: str) -> Provenance:
        """The commit (and author) that asked for an action on ``manifest``."""
        return self.causes.get(manifest, self.provenance)

    def _tags(
        self, request: dict[str, Any], manifest: str, spec_hash: str, submission: str | None = None
    ) -> dict[str, str]:
        """The author's tags plus ours (ours win: the batch-gitops/ prefix is reserved)."""
        cause = self.cause(manifest)
        return {
            **(request.get("tags") or {}),
            **ownership_tags(
                controller_id=self.controller_id,
                manifest=manifest,
                revision=cause.revision,
                spec_hash=spec_hash,
                author=cause.author,
                submission=submission,
            ),
        }

    def apply(self, plan: Plan, desired: DesiredState) -> list[ActionResult]:
        by_kind: dict[str, list[Action]] = {
            "register": [],
            "stop": [],
            "submit": [],
            "prune": [],
            "deregister": [],
        }
        self._progress = Progress("apply_progress", len(plan.actions), self.progress_interval)
        metrics.PENDING_ACTIONS.set(len(plan.actions))
        for action in plan.actions:
            if action.action == "register":
                by_kind["register"].append(action)
            elif action.action == "submit":
                by_kind["submit"].append(action)
            elif action.action == "deregister":
                by_kind["deregister"].append(action)
            elif action.is_prune:
                by_kind["prune"].append(action)
            else:
                by_kind["stop"].append(action)
        for action in by_kind["register"]:
            self._record(self._register(action))
        for action in by_kind["stop"]:
            self._record(self._stop(action))
        self._submit_waves(by_kind["submit"], desired)
        for action in by_kind["prune"]:
            self._record(self._stop(action))
        self._deregister_all(by_kind["deregister"])
        return self.results

    # --- bookkeeping ---
    def _record(self, outcome: ActionResult) -> None:
        action = outcome.action
        cause = self.cause(action.manifest)
        self.results.append(outcome)
        if self._progress is not None:
            self._progress.advance(action=action.action)
        if outcome.result != "deferred":  # deferred: still to do, next pass
            metrics.PENDING_ACTIONS.dec()
        metrics.ACTIONS.labels(
            action=action.action, queue=action.queue or "-", result=outcome.result
        ).inc()
        self.ledger.record_action(
            pass_id=self.pass_id,
            action=action.action,
            kind=action.kind,
            name=action.name,
            queue=action.queue,
            manifest=action.manifest,
            provenance=cause,
            result=outcome.result,
            aws_id=outcome.aws_id or action.aws_id,
            message=outcome.message,
        )
        event = log.info if outcome.result in ("ok", "stopping") else log.warning
        event(
            "action",
            action=action.action,
            kind=action.kind,
            manifest=action.manifest,
            job_name=action.name if action.kind == "job" else None,
            definition=action.name if action.kind == "job-definition" else None,
            queue=action.queue or None,
            aws_id=outcome.aws_id or action.aws_id or None,
            reason=action.reason,
            result=outcome.result,
            message=outcome.message or None,
            author=cause.author,
            commit=cause.revision[:12],
        )

    # --- definitions ---
    def _register(self, action: Action) -> ActionResult:
        want = action.definition
        assert want is not None
        request = dict(want.request)
        request["tags"] = self._tags(want.request, want.manifest, want.spec_hash)
        try:
            registered = self._registered_earlier(want.name, want.spec_hash)
            attempts = 0
            while registered is None:
                attempts += 1
                try:
                    self._mark_writes_sent()
                    registered = self.api.register_job_definition(request)
                except Transient:
                    # Throttled, refused or reply lost: settle first (did it land?), then
                    # try again — never a blind retry that could add a second revision.
                    if attempts >= REGISTER_ATTEMPTS:
                        raise
                    time.sleep(0.2 * attempts)
                    registered = self._registered_earlier(want.name, want.spec_hash)
        except BatchError as exc:
            self._failed_definitions.add(want.name)
            return ActionResult(action, "failed", message=str(exc))
        self.ledger.record_definition(
            arn=registered.arn,
            name=registered.name,
            revision=registered.revision,
            manifest=want.manifest,
            spec_hash=want.spec_hash,
            prune=want.options.prune,
            provenance=self.cause(want.manifest),
        )
        return ActionResult(
            action, "ok", aws_id=registered.arn, message=f"revision {registered.revision}"
        )

    def _mark_writes_sent(self) -> None:
        """Before the first write that has no ledger record of its own: a crash right
        after it must not leave a ledger that looks lost (see WRITES_SENT_META)."""
        if not self._writes_marked:
            if self.ledger.get_meta(WRITES_SENT_META) is None:
                self.ledger.set_meta(WRITES_SENT_META, str(time.time()))
            self._writes_marked = True

    def _registered_earlier(self, name: str, spec_hash: str) -> Registered | None:
        """The newest ACTIVE revision, if we registered it with this spec hash already.

        A crash or a lost reply after RegisterJobDefinition leaves a revision in AWS that
        the ledger does not know; adopting it keeps one revision per spec. Only the newest
        revision counts: adopting an older one would leave a newer one as "current".
        """
        revisions = self.api.describe_job_definitions(name=name, status="ACTIVE")
        if not revisions:
            return None
        newest = max(revisions, key=lambda d: int(d.get("revision", 0)))
        tags = newest.get("tags") or {}
        if not is_managed(tags, self.controller_id) or tags.get(SPEC_HASH_TAG) != spec_hash:
            return None
        log.info("definition_adopted", definition=name, arn=newest["jobDefinitionArn"])
        return Registered(
            newest["jobDefinitionArn"], newest["jobDefinitionName"], int(newest["revision"])
        )

    def _deregister_all(self, actions: list[Action]) -> None:
        tags_by_arn: dict[str, dict[str, str]] = {}
        for name in sorted({a.name for a in actions}):
            try:
                for definition in self.api.describe_job_definitions(name=name, status=None):
                    tags_by_arn[definition["jobDefinitionArn"]] = definition.get("tags") or {}
            except BatchError as exc:
                log.warning("describe_definitions_failed", definition=name, error=str(exc))
        for action in actions:
            if self._out_of_time():
                self._record(self._deferred(action))
                continue
            self._writes_started += 1
            tags = tags_by_arn.get(action.aws_id)
            if tags is None:
                # AWS no longer lists it (or the read failed): deregistering twice is harmless
                # only if we know it is ours, so just forget it when AWS forgot it.
                outcome = ActionResult(action, "skipped", message="not found in AWS")
                if action.aws_id and not tags_by_arn:
                    outcome.message = "could not read the definition; will retry"
                else:
                    self.ledger.record_deregistered(action.aws_id)
            elif not is_managed(tags, self.controller_id):
                outcome = ActionResult(action, "failed", message="not tagged as ours; refusing")
            else:
                try:
                    self.api.deregister_job_definition(action.aws_id)
                    self.ledger.record_deregistered(action.aws_id)
                    outcome = ActionResult(action, "ok", aws_id=action.aws_id)
                except BatchError as exc:
                    outcome = ActionResult(action, "failed", message=str(exc))
            self._record(outcome)

    # --- jobs: stop ---
    def _describe(self, job_id: str) -> dict[str, Any] | None:
        jobs = self.api.describe_jobs([job_id])
        return jobs[0] if jobs else None

    def _out_of_time(self) -> bool:
        # Every pass starts at least one write, so a pass whose reads alone used up the
        # budget still makes progress.
        return (
            self.deadline is not None
            and time.monotonic() >= self.deadline
            and self._writes_started > 0
        )

    def _deferred(self, action: Action) -> ActionResult:
        return ActionResult(
            action, "deferred", action.aws_id, "pass time budget used up; continues next pass"
        )

    def _stop(self, action: Action) -> ActionResult:
        if self._out_of_time():
            return self._deferred(action)
        self._writes_started += 1
        job_id = action.aws_id
        reason = (
            f"batch-gitops: manifest {action.reason} at {self.cause(action.manifest).revision[:12]}"
        )
        try:
            job = self._describe(job_id)
            if job is None:
                # Ours (the ledger holds the ID we got from SubmitJob) but not returned by
                # AWS yet: late is not gone. TerminateJob takes the ID in any state (a queued
                # job is cancelled by it), so the stop does not wait for AWS to list it; the
                # next pass reads the outcome.
                self.api.terminate_job(job_id, reason)
                return ActionResult(
                    action,
                    "stopping",
                    job_id,
                    "TerminateJob sent by ID; AWS does not return the job yet (not visible)",
                )
            elif job.get("status") not in ACTIVE_STATUSES:
                return ActionResult(action, "ok", job_id, f"already finished ({job.get('status')})")
            elif not is_managed(job.get("tags"), self.controller_id):
                return ActionResult(
                    action,
                    "failed",
                    job_id,
                    "job does not carry our managed-by tag; refusing to stop it",
                )
            elif job["status"] in QUEUED_STATUSES:
                verb = action.action
                self.api.cancel_job(job_id, reason)
                job = self._describe(job_id)
                if job is not None and job.get("status") in ("STARTING", "RUNNING"):
                    # It started between our read and the cancel: CancelJob did nothing.
                    self.api.terminate_job(job_id, reason)
                    verb = "terminate"
            else:
                self.api.terminate_job(job_id, reason)
                verb = "terminate"
            final = self._wait_finished(job_id)
        except BatchError as exc:
            return ActionResult(action, "failed", job_id, str(exc))
        escalated = " (escalated to TerminateJob)" if verb != action.action else ""
        if final is None:
            # Still not returned by AWS: the next pass reads it again (and stops it again
            # if it is still active then; TerminateJob is idempotent).
            return ActionResult(
                action,
                "stopping",
                job_id,
                f"{verb} requested{escalated}; AWS does not return the job yet (not visible)",
            )
        # Record what we saw now, so the jobs gauge, status and history do not lag a pass.
        self.ledger.record_status(job_id, final, reason)
        if action.is_prune and final not in ACTIVE_STATUSES:
            self.ledger.set_retired(action.queue, action.name, True)
        if final in ACTIVE_STATUSES:
            return ActionResult(
                action, "stopping", job_id, f"{verb} requested{escalated}; still {final}"
            )
        return ActionResult(action, "ok", job_id, f"{final}{escalated}")

    def _wait_finished(self, job_id: str) -> str | None:
        """The job's status once it is no longer active (or at the deadline); None while
        AWS does not return it at all."""
        deadline = time.monotonic() + self.verify_timeout
        delay = 0.05
        while True:
            job = self._describe(job_id)
            status = str(job.get("status")) if job else None
            if (status is not None and status not in ACTIVE_STATUSES) or (
                time.monotonic() >= deadline
            ):
                return status
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    # --- jobs: submit ---
    def _submit_waves(self, actions: list[Action], desired: DesiredState) -> None:
        pending = {a.job.key: a for a in actions if a.job is not None}
        upstream = {key: a.job.upstream for key, a in pending.items() if a.job is not None}
        # Only read for upstream job IDs: skipped unless a job to submit has an upstream
        # (the whole jobs table is ~40 ms per 10,000 rows).
        current = self.ledger.current_jobs() if any(upstream.values()) else {}
        while pending:
            if self._out_of_time():
                for action in pending.values():
                    self._record(self._deferred(action))
                return
            wave = [
                a
                for key, a in sorted(pending.items())
                if not any(up in pending for up in upstream[key])
            ]
            if not wave:  # cycles are rejected earlier; never spin
                wave = list(pending.values())
            for action in wave:
                assert action.job is not None
                del pending[action.job.key]
            prepared: list[tuple[Action, dict[str, Any] | None, str]] = []
            for action in wave:
                request, why = self._prepare(action, desired, current)
                prepared.append((action, request, why))
            runnable = [(a, r) for a, r, _ in prepared if r is not None]
            for action, request, why in prepared:
                if request is None:
                    assert action.job is not None
                    self._failed_keys.add(action.job.key)
                    self._record(ActionResult(action, "skipped", message=why))
            self._run_parallel(runnable)

    def _run_parallel(self, runnable: list[tuple[Action, dict[str, Any]]]) -> None:
        def submit(pair: tuple[Action, dict[str, Any]]) -> ActionResult:
            return self._submit(*pair)

        if self.concurrency <= 1 or len(runnable) <= 1:
            for pair in runnable:
                self._record(submit(pair))
            return
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            # Recorded (log event, metric, audit row) as each finishes, in order, on this
            # thread: a wave of thousands shows its rate while it runs, not at its end.
            for outcome in pool.map(submit, runnable):
                self._record(outcome)

    def _prepare(
        self, action: Action, desired: DesiredState, current: dict[JobKey, Any]
    ) -> tuple[dict[str, Any] | None, str]:
        want = action.job
        assert want is not None
        request = dict(want.request)
        definition = str(request["jobDefinition"])
        if definition in desired.definitions:
            if definition in self._failed_definitions:
                return None, f"job definition {definition!r} failed to register"
            revisions = self.ledger.active_definitions().get(definition)
            if not revisions:
                return None, f"job definition {definition!r} has no registered revision"
            request["jobDefinition"] = f"{definition}:{revisions[-1].revision}"
        if want.upstream:
            by_name = {key[1]: key for key in want.upstream}
            depends = []
            for dep in request.get("dependsOn") or []:
                key = by_name.get(str(dep.get("jobId")))
                if key is None:
                    depends.append(dep)
                    continue
                if key in self._failed_keys:
                    return None, f"upstream job {key[1]!r} was not submitted"
                job_id = self._submitted.get(key)
                if job_id is None:
                    record = current.get(key)
                    job_id = record.job_id if record is not None else None
                if not job_id:
                    return None, f"upstream job {key[1]!r} has no job ID yet"
                depends.append({**dep, "jobId": job_id})
            request["dependsOn"] = depends
        return request, ""

    def _submit(self, action: Action, request: dict[str, Any]) -> ActionResult:
        want = action.job
        assert want is not None
        if self._out_of_time():
            # Before the intent: a deferred submit leaves no trace, the next pass plans it.
            self._failed_keys.add(want.key)
            return self._deferred(action)
        self._writes_started += 1
        token = uuid.uuid4().hex
        request["tags"] = self._tags(want.request, want.manifest, want.spec_hash, token)
        try:
            self.ledger.record_intent(
                token=token,
                queue=want.queue,
                name=want.name,
                manifest=want.manifest,
                spec_hash=want.spec_hash,
                prune=want.options.prune,
                provenance=self.cause(want.manifest),
                replaces=action.replaces,
                fence=self.fence,
            )
        except ClaimConflict as exc:
            # Another writer claimed this key since we planned: its run is the one.
            self._failed_keys.add(want.key)
            return ActionResult(action, "skipped", message=str(exc))
        try:
            job_id = self.api.submit_job(request)
        except OutcomeUnknown as exc:
            self._failed_keys.add(want.key)
            return ActionResult(action, "unknown", message=f"{exc}; will settle by tag")
        except Rejected as exc:
            self.ledger.record_outcome(token, "rejected", str(exc))
            self._failed_keys.add(want.key)
            return ActionResult(action, "failed", message=str(exc))
        except BatchError as exc:
            self.ledger.record_outcome(token, "lost", str(exc))
            self._failed_keys.add(want.key)
            return ActionResult(action, "failed", message=str(exc))
        self.ledger.record_submitted(token, job_id)
        self._submitted[want.key] = job_id
        committed_at = self.cause(want.manifest).committed_at
        if committed_at:
            metrics.COMMIT_TO_SUBMIT.observe(max(0.0, time.time() - committed_at))
        return ActionResult(action, "ok", aws_id=job_id)
