"""After each pass: commit statuses on the forges and notifications, from what the ledger says.

Called by the daemon once per pass (``Reporter.after_pass``), on the pass's
thread, after the pass is over. It only reads the ledger (indexed queries: the
runs of the commits it follows), never AWS: the statuses ``observe`` refreshed
this pass are what it reports. Requests go to :mod:`.delivery`'s queues, so a
forge that is slow or down costs the pass nothing, and no error in here can fail
a pass.

Which commits: every commit whose jobs this pass submitted, plus every commit it
already follows whose jobs have not all finished, or whose last status did not
reach the forge yet. A commit is dropped from the followed set once its jobs are
over and its final status was sent, so a commit whose jobs span several passes
keeps one status that reflects them all.

What was posted, and which failed runs were notified, is remembered in the
ledger's meta (``notify.memo``: commit SHAs, job names and states, never a URL
or token): a restart neither re-posts every status nor re-notifies old failures.
The first start on an existing ledger follows the commits with active jobs and
treats failures that happened before it as already told.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from controller.engine.reconcile import PassResult
from controller.logs import redact_text
from controller.model.records import JobRecord
from controller.model.schedule_rules import tick_from_suffix
from controller.service.notify.commits import CommitReport, commit_report, run_outcome
from controller.service.notify.config import ForgeTarget, NotifyConfig
from controller.service.notify.delivery import RetryPolicy, Sink, default_verdict
from controller.service.notify.events import Event, Notifier
from controller.service.notify.forges import gitlab_verdict, status_request
from controller.state.ledger import Ledger

log = structlog.get_logger(__name__)

MEMO_KEY = "notify.memo"
MEMO_VERSION = 1
KEEP_CLOSED = 500  # finished commits remembered (a re-run must not re-post or re-notify)
LOOKUP_ONE_BY_ONE = 200  # more submits than this in a pass: one read of all current runs
FAILED = ("failed", "rejected")


@dataclass
class CommitMemo:
    open: bool = True
    failed: set[str] = field(default_factory=set)  # failure_key of runs already notified
    invalid: list[str] = field(default_factory=list)  # manifests this commit made invalid
    posted: dict[str, str] = field(default_factory=dict)  # forge -> CommitReport.key
    queued: dict[str, str] = field(default_factory=dict)  # forge -> key on its way (not kept)

    def as_json(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "failed": sorted(self.failed),
            "invalid": self.invalid,
            "posted": self.posted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommitMemo:
        return cls(
            open=bool(data.get("open", True)),
            failed=set(data.get("failed", [])),
            invalid=list(data.get("invalid", [])),
            posted=dict(data.get("posted", {})),
        )


class Reporter:
    def __init__(
        self,
        config: NotifyConfig,
        ledger: Ledger,
        *,
        retry: RetryPolicy | None = None,
        # GitHub's secondary rate limit allows about 80 content-creating requests a minute.
        forge_interval: float = 0.75,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.clock = clock
        secrets = config.secrets()
        self.forges: list[tuple[ForgeTarget, Sink]] = [
            (
                target,
                Sink(
                    target.kind,
                    secrets=secrets,
                    retry=retry,
                    verdict=gitlab_verdict if target.kind == "gitlab" else default_verdict,
                    min_interval=forge_interval,
                ),
            )
            for target in config.forges
        ]
        self.notifier: Notifier | None = None
        if config.webhook_urls:
            self.notifier = Notifier(
                config.webhook_urls,
                controller_id=config.controller_id,
                rate_per_minute=config.rate_per_minute,
                make_sink=lambda: Sink("webhook", secrets=secrets, retry=retry),
            )
        self._lock = threading.Lock()  # commits: the pass thread and the delivery callbacks
        self.commits: OrderedDict[str, CommitMemo] = OrderedDict()
        self.invalid: set[str] = set()
        self.held: set[str] = set()
        self.untrusted = ""
        self.scheduled: set[str] = set()  # manifests of scheduled templates
        self.source_down_since: float | None = None
        self.source_down_told = False
        self.more_to_submit = False
        self._saved = ""
        self._seeded = self._load()

    # --- the hook ---
    def after_pass(self, outcome: PassResult) -> None:
        """Everything this pass has to tell; never raises (a bug here is logged, not fatal)."""
        try:
            self._after_pass(outcome)
        except Exception:
            log.exception("notify_after_pass_failed")

    def _after_pass(self, outcome: PassResult) -> None:
        if outcome.dry_run or outcome.result in ("standby", "lease-lost"):
            return
        self._reload_if_changed()  # another replica led (and remembered) since our last pass
        first_start = not self._seeded
        if first_start:
            self._seed()
        if outcome.desired is not None:
            self.scheduled = {job.manifest for job in outcome.desired.schedules.values()}
        head_invalid = self._pass_events(outcome)
        # The pass's time budget left submissions for the next pass, and which commits they
        # belong to is only known once they are submitted: no commit is called a success yet.
        self.more_to_submit = any(r.result == "deferred" for r in outcome.results)
        new_runs = self._runs_submitted(outcome)
        new_tokens = {run.token for run in new_runs}
        candidates = [sha for sha, memo in self.commits.items() if memo.open]
        candidates += sorted({run.revision for run in new_runs if run.revision})
        # On the first start the head did not necessarily break what is invalid: told, but
        # no `error` status on it.
        if head_invalid and outcome.revision and not first_start:
            candidates.append(outcome.revision)
            self._memo(outcome.revision, new_tokens, []).invalid = head_invalid
        for sha in dict.fromkeys(candidates):
            self._follow(sha, new_tokens)
        self._save()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout`` per destination), then remember it."""
        for _, sink in self.forges:
            sink.close(timeout)
        if self.notifier is not None:
            self.notifier.close(timeout)
        try:
            self._save()
        except Exception:
            log.exception("notify_memo_not_saved")

    def wait_idle(self, timeout: float) -> bool:
        sinks = [sink for _, sink in self.forges]
        sinks += self.notifier.sinks if self.notifier is not None else []
        return all(sink.wait_idle(timeout) for sink in sinks)

    # --- pass-level events ---
    def _pass_events(self, outcome: PassResult) -> list[str]:
        """Notify what the pass as a whole says; returns manifests that just became invalid."""
        self._source_events(outcome)
        if outcome.result == "untrusted" and outcome.revision != self.untrusted:
            self.untrusted = outcome.revision
            self._notify(
                Event(
                    "signature-rejected",
                    f"untrusted:{outcome.revision}",
                    f":no_entry: batch-gitops refused commit {outcome.revision[:12]} "
                    f"by {outcome.author or 'unknown'}: {outcome.message}",
                    commit=outcome.revision,
                    author=outcome.author,
                    status="untrusted",
                    reason=outcome.message,
                )
            )
        newly_invalid: list[str] = []
        if outcome.desired is not None:
            errors = {error.path: str(error) for error in outcome.errors}
            newly_invalid = sorted(set(errors) - self.invalid)
            self.invalid = set(errors)
            if newly_invalid:
                self._notify(
                    Event(
                        "manifests-invalid",
                        f"invalid:{outcome.revision}:{','.join(newly_invalid)}",
                        f":warning: {len(newly_invalid)} invalid manifest(s) at "
                        f"{outcome.revision[:12]} (by {outcome.author or 'unknown'}), not "
                        "applied: " + "; ".join(errors[path] for path in newly_invalid[:10]),
                        commit=outcome.revision,
                        author=outcome.author,
                        manifest=", ".join(newly_invalid),
                        status="invalid",
                        reason="; ".join(errors[path] for path in newly_invalid[:10]),
                    )
                )
        if outcome.plan is not None:
            held = {f"{a.queue}/{a.name}" if a.queue else a.name for a in outcome.plan.held}
            new_held = held - self.held
            self.held = held
            if new_held:
                self._notify(
                    Event(
                        "prunes-held",
                        f"held:{','.join(sorted(held))}",
                        f":raised_hand: {len(held)} prune(s) held at {outcome.revision[:12]}: "
                        f"{outcome.plan.held_reason}. Set BATCH_GITOPS_ALLOW_MASS_PRUNE to "
                        "apply them.",
                        commit=outcome.revision,
                        author=outcome.author,
                        manifest=", ".join(sorted({a.manifest for a in outcome.plan.held})),
                        job=", ".join(sorted(held)[:20]),
                        status="held",
                        reason=outcome.plan.held_reason,
                    )
                )
        return newly_invalid

    def _source_events(self, outcome: PassResult) -> None:
        now = self.clock()
        if outcome.result != "source-error":
            if self.source_down_told and self.source_down_since is not None:
                self._notify(
                    Event(
                        "source-recovered",
                        f"source-recovered:{self.source_down_since}",
                        f":white_check_mark: batch-gitops reads its source again "
                        f"(down {now - self.source_down_since:.0f}s)",
                        commit=outcome.revision,
                        status="recovered",
                    )
                )
            self.source_down_since, self.source_down_told = None, False
            return
        if self.source_down_since is None:
            self.source_down_since = now
        down = now - self.source_down_since
        if not self.source_down_told and down >= self.config.source_unreachable_after:
            self.source_down_told = True
            self._notify(
                Event(
                    "source-unreachable",
                    f"source-unreachable:{self.source_down_since}",
                    f":rotating_light: batch-gitops cannot read its source for {down:.0f}s: "
                    f"{outcome.message}",
                    status="source-error",
                    reason=outcome.message,
                )
            )

    # --- commits ---
    def _runs_submitted(self, outcome: PassResult) -> list[JobRecord]:
        """The runs this pass created (ledger records), to follow their commits."""
        submits = [
            result
            for result in outcome.results
            if result.action.action == "submit"
            and result.action.kind == "job"
            and result.result in ("ok", "failed", "unknown")
        ]
        if len(submits) > LOOKUP_ONE_BY_ONE:
            current = self.ledger.current_jobs()
            found = [current.get((r.action.queue, r.action.name)) for r in submits]
            return [run for run in found if run is not None]
        runs = []
        for result in submits:
            run = self.ledger.job_by_id(result.aws_id) if result.aws_id else None
            if run is None:  # rejected or unknown: the newest run of the job
                key = (result.action.queue, result.action.name)
                matching = [
                    r
                    for r in self.ledger.jobs_matching(manifest=result.action.manifest)
                    if r.key == key
                ]
                run = matching[-1] if matching else None
            if run is not None:
                runs.append(run)
        return runs

    def _memo(self, sha: str, new_tokens: set[str], runs: Iterable[JobRecord]) -> CommitMemo:
        """The commit's memo; a commit followed anew treats its older failures as told."""
        with self._lock:
            memo = self.commits.get(sha)
            if memo is None:
                memo = CommitMemo(
                    failed={
                        failure_key(r)
                        for r in runs
                        if run_outcome(r) in FAILED and r.token not in new_tokens
                    }
                )
                self.commits[sha] = memo
            else:
                memo.open = True
            self.commits.move_to_end(sha)
            return memo

    def _follow(self, sha: str, new_tokens: set[str]) -> None:
        runs = self._runs_of(sha)
        memo = self._memo(sha, new_tokens, runs)
        for run in runs:
            if run_outcome(run) in FAILED and failure_key(run) not in memo.failed:
                memo.failed.add(failure_key(run))
                self._notify_failed(run)
        report = commit_report([r for r in runs if not self._is_tick(r)], memo.invalid)
        if report is not None and report.state == "success" and self.more_to_submit:
            report = dataclasses.replace(
                report, state="queued", description=report.description + "; more to submit"
            )
        unsent = False
        if report is not None:
            for target, sink in self.forges:
                if memo.posted.get(target.kind) == report.key:
                    continue
                unsent = True
                if memo.queued.get(target.kind) == report.key:
                    continue  # already on its way
                memo.queued[target.kind] = report.key
                sink.submit(
                    sha,
                    status_request(
                        target,
                        sha,
                        report,
                        context=self.config.context,
                        target_url=self.config.target_url,
                    ),
                    on_done=self._done(sha, target.kind, report),
                )
        active = any(run_outcome(run) in ("queued", "running") for run in runs)
        with self._lock:
            memo.open = active or unsent

    def _runs_of(self, sha: str) -> list[JobRecord]:
        """Every run the commit caused, oldest first (one indexed ledger query)."""
        runs = self.ledger.jobs_matching(revision_prefix=sha)
        return [run for run in runs if run.revision == sha]

    def _done(self, sha: str, kind: str, report: CommitReport) -> Callable[[str], None]:
        def mark(result: str) -> None:  # on the delivery thread (or the pass's, if dropped)
            with self._lock:
                memo = self.commits.get(sha)
                if memo is None:
                    return
                if memo.queued.get(kind) == report.key:
                    del memo.queued[kind]
                if result == "sent":
                    memo.posted[kind] = report.key
            if result != "sent":
                return  # the next pass tries again (the commit stays followed)
            log.info(
                "commit_status_sent",
                forge=kind,
                commit=sha[:12],
                state=report.state,
                description=report.description,
            )

        return mark

    def _is_tick(self, run: JobRecord) -> bool:
        return (
            run.manifest in self.scheduled
            and tick_from_suffix(run.name.rsplit("-", 1)[-1]) is not None
        )

    def _notify_failed(self, run: JobRecord) -> None:
        rejected = run.state == "rejected"
        reason = run.status_reason or ""
        if rejected and not reason:
            rows = self.ledger.actions(revision=run.revision, manifest=run.manifest)
            messages = [r.get("message", "") for r in rows if r.get("result") == "failed"]
            reason = str(messages[-1]) if messages else "rejected by AWS Batch"
        status = "REJECTED" if rejected else "FAILED"
        verb = "was rejected" if rejected else "FAILED"
        self._notify(
            Event(
                "job-failed",
                f"job-failed:{failure_key(run)}",
                f":x: Job `{run.name}` {verb} on queue `{run.queue}`"
                + (f": {reason}" if reason else "")
                + f" (commit {run.revision[:12]} by {run.author or 'unknown'}, {run.manifest})",
                commit=run.revision,
                author=run.author,
                manifest=run.manifest,
                job=run.name,
                queue=run.queue,
                status=status,
                reason=reason,
            )
        )

    def _notify(self, event: Event) -> None:
        log.info("notification", kind=event.event, commit=event.commit[:12] or None)
        if self.notifier is not None:
            self.notifier.notify(event)

    # --- memo (ledger meta) ---
    def _reload_if_changed(self) -> None:
        raw = self.ledger.get_meta(MEMO_KEY)
        if raw is not None and raw != self._saved:
            log.info("notify_memo_reloaded")
            self._seeded = self._load(raw) or self._seeded

    def _load(self, raw: str | None = None) -> bool:
        raw = raw if raw is not None else self.ledger.get_meta(MEMO_KEY)
        if raw is None:
            return False
        try:
            data = json.loads(raw)
            self.commits = OrderedDict(
                (sha, CommitMemo.from_json(memo)) for sha, memo in data.get("commits", {}).items()
            )
            self.invalid = set(data.get("invalid", []))
            self.held = set(data.get("held", []))
            self.untrusted = str(data.get("untrusted", ""))
        except (ValueError, AttributeError, TypeError) as exc:
            log.warning("notify_memo_unreadable", error=redact_text(str(exc)))
            return False
        self._saved = raw
        return True

    def _seed(self) -> None:
        """First start on this ledger: follow the commits of the jobs still active."""
        self._seeded = True
        active = {
            run.revision
            for run in self.ledger.current_jobs().values()
            if run.revision and run_outcome(run) in ("queued", "running")
        }
        for sha in sorted(active):
            self._memo(sha, set(), self._runs_of(sha))
        log.info("notify_following", commits=len(active))

    def _save(self) -> None:
        with self._lock:
            closed = [sha for sha, memo in self.commits.items() if not memo.open]
            for sha in closed[: max(0, len(closed) - KEEP_CLOSED)]:
                del self.commits[sha]
            data = {
                "v": MEMO_VERSION,
                "commits": {sha: memo.as_json() for sha, memo in self.commits.items()},
                "invalid": sorted(self.invalid),
                "held": sorted(self.held),
                "untrusted": self.untrusted,
            }
        raw = json.dumps(data, separators=(",", ":"))
        if raw != self._saved:
            self.ledger.set_meta(MEMO_KEY, raw)
            self._saved = raw


def failure_key(run: JobRecord) -> str:
    """One failure event: a FAILED run, or a job's rejection (the planner submits a
    rejected job again every pass: the same job and spec is the same event)."""
    if run.state == "rejected":
        return f"rejected:{run.queue}/{run.name}:{run.spec_hash}"
    return run.token
