"""One reconcile pass, in the order it runs:

source -> guard -> manifests -> policy -> desired -> schedules -> settle -> observe
-> plan -> apply -> record (see :class:`_Pass`).

Outer bookkeeping lives in ``try/finally`` in :func:`run_pass`: duration, result,
metrics and one canonical log line per pass. A pass whose source cannot be read
plans nothing and prunes nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from controller import metrics
from controller.aws.batch import BatchApi, BatchError
from controller.aws.lease import LeaseLost
from controller.engine.apply import ActionResult, Applier
from controller.engine.observe import SettleResult, observe, settle_intents
from controller.engine.schedules import expand_schedules
from controller.model.desired import DesiredState, build_desired
from controller.model.manifests import (
    ManifestError,
)
from controller.model.plan import ObservedState, Plan, PlanOptions, plan_actions
from controller.model.records import Fence, Provenance
from controller.settings import Settings
from controller.source.guard import apply_policy, limits, refuse
from controller.source.manifest_cache import ManifestCache
from controller.source.repository import GitSource, Snapshot, SourceError, repository_name
from controller.state.ledger import Fenced, Ledger
from controller.state.rebuild import assumed_ledger, ledger_loss

log = structlog.get_logger(__name__)
# Ledger meta: the invalid manifests of the last applying pass that read its source, as
# JSON {"revision", "errors": [{"path", "field", "message"}]} (shown by `status`).
INVALID_META = "invalid_manifests"
# Ledger meta: the repository (name and --path) whose passes the ledger records. A second
# repository applied with the same controller id would otherwise find the first one's
# jobs in the (shared, per-id) default ledger and prune them as "removed".
REPOSITORY_META = "repository"


@dataclass
class PassResult:
    pass_id: str
    result: str = "ok"  # ok | degraded | source-error | error
    revision: str = ""
    author: str = ""
    committed_at: float = 0.0
    message: str = ""
    desired: DesiredState | None = None
    plan: Plan | None = None
    results: list[ActionResult] = field(default_factory=list)
    settled: SettleResult | None = None
    duration: float = 0.0
    dry_run: bool = False

    @property
    def errors(self) -> list[ManifestError]:
        return self.desired.errors if self.desired else []

    @property
    def failed(self) -> bool:
        return self.result != "ok"

    def counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for outcome in self.results:
            counts[f"{outcome.action.action}_{outcome.result}"] += 1
        if self.plan is not None:
            counts["held"] = len(self.plan.held)
            counts["waiting"] = len(self.plan.waiting)
        counts["invalid"] = len(self.errors)
        return dict(counts)

    def as_dict(self) -> dict[str, Any]:
        plan = self.plan or Plan()
        return {
            "pass_id": self.pass_id,
            "result": self.result,
            "revision": self.revision,
            "author": self.author,
            "message": self.message,
            "dry_run": self.dry_run,
            "duration_seconds": round(self.duration, 3),
            "actions": (
                [a.as_dict() for a in plan.actions]
                if self.dry_run
                else [r.as_dict() for r in self.results]
            ),
            "held": [a.as_dict() for a in plan.held],
            "held_reason": plan.held_reason,
            "waiting": plan.waiting,
            "errors": [e.as_dict() for e in self.errors],
            "counts": self.counts(),
        }


def plan_options(settings: Settings) -> PlanOptions:
    return PlanOptions(
        prune=settings.prune,
        prune_max_jobs=settings.prune_max_jobs,
        prune_max_ratio=settings.prune_max_ratio,
        allow_mass_prune=settings.allow_mass_prune,
    )


def run_pass(
    settings: Settings,
    source: GitSource,
    api: BatchApi,
    ledger: Ledger,
    *,
    dry_run: bool = False,
    cache: ManifestCache | None = None,
    now: datetime | None = None,
    fence: Fence | None = None,
) -> PassResult:
    """One pass. Never raises for a bad source, manifest or AWS error: it is in the result.

    A writing pass (not ``dry_run``) must hold the ledger's writer lock (callers:
    ``reconcile``, the daemon, the demo); ``fence`` is what that lock returned.
    """
    outcome = PassResult(pass_id=uuid.uuid4().hex[:12], dry_run=dry_run)
    started = time.perf_counter()
    structlog.contextvars.bind_contextvars(pass_id=outcome.pass_id)
    if not dry_run:
        ledger.start_pass(outcome.pass_id)
    stages = _Pass(settings, source, api, ledger, outcome, cache or ManifestCache(), fence)
    try:
        stages.run(now or datetime.now(UTC))
    except (LeaseLost, Fenced) as exc:  # another replica leads now: no more writes
        outcome.result = "lease-lost"
        outcome.message = str(exc)
        log.warning("pass_aborted_lease_lost", error=str(exc))
    except Exception as exc:  # a bug must not kill the daemon; it must be loud
        outcome.result = "error"
        outcome.message = f"{type(exc).__name__}: {exc}"
        log.exception("pass_crashed")
    finally:
        outcome.duration = time.perf_counter() - started
        _finish(settings, ledger, outcome)
        if settings.git_notes and not dry_run and outcome.results:
            _write_git_note(settings, source, outcome)
        structlog.contextvars.unbind_contextvars("pass_id", "revision")
    return outcome


@dataclass
class _Pass:
    """The stages of one pass, in the order they run (``run`` reads top to bottom).

    Each stage either hands its result to the next or ends the pass with the reason
    in ``outcome``; nothing downstream calls back upstream.
    """

    settings: Settings
    source: GitSource
    api: BatchApi
    ledger: Ledger
    outcome: PassResult
    cache: ManifestCache
    fence: Fence | None = None
    started: float = field(default_factory=time.monotonic)  # the time budget counts from here

    def run(self, now: datetime) -> None:
        dry_run = self.outcome.dry_run
        read = self.read_source()  # 1. source: branch head -> snapshot
        if read is None:
            return
        snapshot, remembered = read
        if not self.admit(snapshot):  # 2. guard: signatures, size, a plans-only ledger
            return
        desired = remembered or self.desired_state(snapshot)  # 3. manifests -> policy -> desired
        desired = expand_schedules(  # 4. schedules: cron templates -> one job per due tick
            desired,
            self.ledger,
            now=now,
            grace=timedelta(seconds=self.settings.schedule_grace),
            record=not dry_run,
        )
        self.outcome.desired = desired
        if not dry_run:  # 5. settle: adopt or close submissions whose outcome is unknown
            self.outcome.settled = settle_intents(
                self.api,
                self.ledger,
                grace=self.settings.settle_grace,
                horizon=self.settings.job_retention,
            )
        if self.ledger_lost(desired):
            return
        observed = observe(self.api, self.ledger, record=not dry_run)  # 6. observe
        if not dry_run:
            self.count_not_visible(observed)
        plan = plan_actions(desired, observed, plan_options(self.settings))  # 7. plan
        self.outcome.plan = plan
        if plan.held:
            log.warning("prunes_held", count=len(plan.held), reason=plan.held_reason)
        if dry_run:
            return
        self.outcome.results = self.apply(snapshot, plan, desired)  # 8. apply
        self.record(plan, desired)  # 9. record: bookkeeping and the pass's result

    # --- 1. source ---
    def read_source(self) -> tuple[Snapshot, DesiredState | None] | None:
        """The revision to apply, and its desired state if the cache still holds it."""
        fetch_started = time.perf_counter()
        try:
            revision = self.source.update()
            remembered = self.cache.remembered(revision, self.settings.policy_from)
            snapshot = remembered[0] if remembered else self.source.snapshot(revision)
        except SourceError as exc:
            metrics.FETCH_ERRORS.labels(reason=exc.reason).inc()
            metrics.SOURCE_READY.set(0)
            self.outcome.result = "source-error"
            self.outcome.message = str(exc)
            # Nothing is planned or pruned: what is live stays as the last good revision
            # left it.
            log.warning(
                "source_unavailable",
                reason=exc.reason,
                error=str(exc),
                last_applied_revision=self.ledger.get_meta("last_applied_revision"),
            )
            return None
        finally:
            metrics.FETCH_SECONDS.observe(time.perf_counter() - fetch_started)
        metrics.SOURCE_READY.set(1)
        self.outcome.revision, self.outcome.author = snapshot.revision, snapshot.author
        self.outcome.committed_at = snapshot.committed_at
        structlog.contextvars.bind_contextvars(revision=snapshot.revision[:12])
        metrics.ATTEMPTED_REVISION.info({"revision": snapshot.revision})
        return snapshot, remembered[1] if remembered else None

    # --- 2. guard ---
    def admit(self, snapshot: Snapshot) -> bool:
        refused = refuse(self.settings, snapshot)  # unsigned head, too many files
        if refused is not None:
            self.outcome.result, self.outcome.message = refused
            return False
        other = _other_repository(self.settings, self.ledger, record=not self.outcome.dry_run)
        if other:
            self.outcome.result, self.outcome.message = "error", other
            log.error("ledger_of_another_repository", message=other)
            return False
        planning_only = "" if self.outcome.dry_run else assumed_ledger(self.ledger)
        if planning_only:
            self.outcome.result, self.outcome.message = "error", planning_only
            log.error("ledger_for_plans_only", message=planning_only)
            return False
        return True

    # --- 3. manifests -> policy -> desired ---
    def desired_state(self, snapshot: Snapshot) -> DesiredState:
        loaded = self.cache.load(snapshot, limits(self.settings))
        desired = build_desired(apply_policy(self.settings, snapshot, loaded))
        self.cache.remember(snapshot, self.settings.policy_from, desired)
        return desired

    # --- 5b. an empty ledger next to our traces in AWS ---
    def ledger_lost(self, desired: DesiredState) -> bool:
        """True (and the pass ends) when an empty ledger must not be trusted."""
        try:
            why = ledger_loss(
                self.api,
                self.ledger,
                desired,
                self.settings.controller_id,
                self.ledger.location,
            )
        except BatchError as exc:
            why = (
                f"{self.ledger.location}: the ledger is empty and AWS Batch could not be "
                f"checked for jobs or definitions this controller already made ({exc}); "
                "trying again next pass"
            )
        if why:
            self.outcome.result, self.outcome.message = "error", why
            log.error("ledger_lost", message=why)
        return bool(why)

    # --- 6. observe ---
    def count_not_visible(self, observed: ObservedState) -> None:
        """Active runs AWS did not return: a gauge, and a warning when any stay hidden."""
        now = time.time()
        hidden = [o.record for o in observed.jobs.values() if not o.visible]
        too_long = [r for r in hidden if now - r.missing_since > self.settings.not_visible_warning]
        metrics.JOBS_NOT_VISIBLE.set(len(hidden))
        metrics.JOBS_NOT_VISIBLE_TOO_LONG.set(len(too_long))
        if too_long:
            log.warning(
                "jobs_not_visible_too_long",
                jobs=len(too_long),
                oldest_seconds=round(now - min(r.missing_since for r in too_long)),
                example=f"{too_long[0].queue}/{too_long[0].name} {too_long[0].job_id}",
            )

    # --- 8. apply ---
    def apply(self, snapshot: Snapshot, plan: Plan, desired: DesiredState) -> list[ActionResult]:
        budget = self.settings.max_pass_seconds
        applier = Applier(
            api=self.api,
            ledger=self.ledger,
            provenance=Provenance(snapshot.revision, snapshot.author, snapshot.committed_at),
            causes=_causes(snapshot, plan),
            controller_id=self.settings.controller_id,
            pass_id=self.outcome.pass_id,
            concurrency=self.settings.concurrency,
            progress_interval=self.settings.progress_interval,
            deadline=self.started + budget if budget else None,
            fence=self.fence,
        )
        return applier.apply(plan, desired)

    # --- 9. record ---
    def record(self, plan: Plan, desired: DesiredState) -> None:
        for key in plan.retire:
            self.ledger.set_retired(*key, retired=True)
        for key in plan.unretire:
            self.ledger.set_retired(*key, retired=False)
        for key, manifest in plan.moved.items():  # renamed manifests keep their run
            self.ledger.set_manifest(*key, manifest)
            log.info("manifest_moved", queue=key[0], job_name=key[1], manifest=manifest)
        results = self.outcome.results
        failed = any(r.result in ("failed", "unknown", "skipped", "deferred") for r in results)
        deferred = sum(r.result == "deferred" for r in results)
        if deferred:
            self.outcome.message = (
                f"pass time budget ({self.settings.max_pass_seconds:g}s) used up: {deferred} "
                "actions continue next pass"
            )
        if desired.errors or failed:
            self.outcome.result = "degraded"


def _other_repository(settings: Settings, ledger: Ledger, *, record: bool) -> str:
    """Why this ledger belongs to another repository ('' if it is this one's; an applying
    pass binds an unbound ledger to this repository)."""
    ours = repository_name(settings.repo, settings.path)
    bound = ledger.get_meta(REPOSITORY_META)
    if bound is None:
        if record:
            ledger.set_meta(REPOSITORY_META, ours)
        return ""
    if bound == ours:
        return ""
    return (
        f"{ledger.location} is the ledger of repository {bound!r}, not {ours!r}: a second "
        "repository needs its own controller id (--controller-id or "
        "BATCH_GITOPS_CONTROLLER_ID; it also gets its own default ledger), or --state with "
        f"its own ledger file. If {bound!r} was renamed to {ours!r}, run `batch-gitops "
        f"ledger rebind --state {ledger.location} --repo {settings.repo}` once"
    )


def _causes(snapshot: Snapshot, plan: Plan) -> dict[str, Provenance]:
    """Who asked for each action: the commit that last touched its manifest.

    The head may bundle several authors' commits; tags and the audit trail name the
    one that changed (or removed) the file. One ``git log`` walk, only for the paths
    this pass acts on; a path it cannot attribute falls back to the head.
    """
    paths = {action.manifest for action in plan.actions if action.manifest}
    try:
        commits = snapshot.last_commits(paths)
    except OSError as exc:
        log.warning("causes_unknown", error=str(exc))
        return {}
    return {path: Provenance(*commit) for path, commit in commits.items()}


def _write_git_note(settings: Settings, source: GitSource, outcome: PassResult) -> None:
    """The audit note of this pass on the commit it applied (controller.source.notes)."""
    from controller.source.notes import note_pass

    note_pass(
        repo_dir=source.mirror,
        remote=source.remote,
        ref=settings.git_notes_ref,
        controller_id=settings.controller_id,
        revision=outcome.revision,
        pass_id=outcome.pass_id,
        results=outcome.results,
    )


def _finish(settings: Settings, ledger: Ledger, outcome: PassResult) -> None:
    now = time.time()
    metrics.PASS_SECONDS.observe(outcome.duration)
    metrics.PASSES.labels(result=outcome.result).inc()
    metrics.LAST_PASS.set(now)
    if outcome.plan is not None:
        metrics.HELD_PRUNES.set(len(outcome.plan.held))
    if outcome.desired is not None:
        metrics.MANIFESTS.labels(kind="job", valid="true").set(len(outcome.desired.jobs))
        metrics.MANIFESTS.labels(kind="job-definition", valid="true").set(
            len(outcome.desired.definitions)
        )
        metrics.MANIFESTS.labels(kind="any", valid="false").set(len(outcome.desired.invalid_paths))
    if not outcome.dry_run:
        if outcome.result == "ok":
            metrics.LAST_SUCCESS.set(now)
            metrics.APPLIED_REVISION.info({"revision": outcome.revision})
            metrics.REVISION_COMMIT_TIME.set(outcome.committed_at)
            ledger.set_meta("last_applied_revision", outcome.revision)
        if outcome.revision:
            ledger.set_meta("last_attempted_revision", outcome.revision)
        if outcome.desired is not None:
            errors = [e.as_dict() for e in outcome.errors]
            ledger.set_meta(
                INVALID_META, json.dumps({"revision": outcome.revision, "errors": errors})
            )
        ledger.finish_pass(outcome.pass_id, outcome.revision, outcome.result, outcome.counts())
        _update_job_gauge(ledger)
    log.info(
        "pass",
        result=outcome.result,
        revision=outcome.revision[:12] or None,
        author=outcome.author or None,
        duration_seconds=round(outcome.duration, 3),
        message=outcome.message or None,
        dry_run=outcome.dry_run,
        **outcome.counts(),
    )


def _update_job_gauge(ledger: Ledger) -> None:
    counts = ledger.job_status_counts()
    metrics.JOBS.clear()
    for (queue, status), count in counts.items():
        metrics.JOBS.labels(queue=queue, status=status).set(count)
