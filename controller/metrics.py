"""Every Prometheus collector of batch-gitops, in one place.

Names are prefixed ``batch_gitops_``, carry their unit, and use bounded labels
only (operation, queue, status, kind, result, code) — never a job ID, a path
or a revision, except in the ``*_revision_info`` info metrics whose cardinality
is one series per value kind.
"""

from __future__ import annotations

import math
import time

from prometheus_client import Counter, Gauge, Histogram, Info

PREFIX = "batch_gitops"

# --- reconcile passes ---
PASS_SECONDS = Histogram(
    f"{PREFIX}_pass_duration_seconds",
    "Wall time of one reconcile pass.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
PASSES = Counter(f"{PREFIX}_passes_total", "Reconcile passes by result.", ["result"])
LAST_SUCCESS = Gauge(
    f"{PREFIX}_last_successful_pass_timestamp_seconds",
    "Unix time the last pass that read its source and applied without error ended.",
)
LAST_PASS = Gauge(
    f"{PREFIX}_last_pass_timestamp_seconds", "Unix time the last pass ended, whatever its result."
)
ATTEMPTED_REVISION = Info(
    f"{PREFIX}_attempted_revision", "The revision the last pass tried to apply."
)
APPLIED_REVISION = Info(f"{PREFIX}_applied_revision", "The last revision applied without error.")

# --- source ---
FETCH_SECONDS = Histogram(
    f"{PREFIX}_source_fetch_duration_seconds",
    "Time to bring the source up to date (ls-remote/fetch).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
FETCH_ERRORS = Counter(
    f"{PREFIX}_source_fetch_errors_total",
    "Failed attempts to read the source, by reason.",
    ["reason"],
)
SOURCE_READY = Gauge(
    f"{PREFIX}_source_ready", "1 when the last attempt to read the source succeeded."
)
REVISION_COMMIT_TIME = Gauge(
    f"{PREFIX}_applied_revision_commit_timestamp_seconds",
    "Commit time of the applied revision (age = time() - this).",
)
REVISION_AGE = Gauge(
    f"{PREFIX}_applied_revision_age_seconds",
    "Seconds since the applied revision was committed (NaN before the first applied pass).",
)


def _revision_age() -> float:
    # Computed at scrape time, so the age grows between passes as it really does.
    committed = next(iter(REVISION_COMMIT_TIME.collect())).samples[0].value
    return max(0.0, time.time() - committed) if committed else math.nan


REVISION_AGE.set_function(_revision_age)
MANIFESTS = Gauge(
    f"{PREFIX}_manifests",
    "Manifests in the applied revision by kind and validity.",
    ["kind", "valid"],
)

# --- actions ---
ACTIONS = Counter(
    f"{PREFIX}_actions_total",
    "Actions taken on AWS by action (register, submit, cancel, terminate, deregister), "
    "queue and result.",
    ["action", "queue", "result"],
)
HELD_PRUNES = Gauge(
    f"{PREFIX}_held_prunes", "Prunes held back by the mass-prune guard, awaiting acknowledgement."
)
PENDING_ACTIONS = Gauge(
    f"{PREFIX}_pending_actions",
    "Actions the last applying pass planned and has not applied yet: counts down while it "
    "runs; what its time budget deferred stays counted until a later pass applies it.",
)
INTENTS_SETTLED = Counter(
    f"{PREFIX}_intents_settled_total",
    "Submissions whose outcome was unknown (crash, lost reply), settled by their tag: "
    "adopted (AWS had it), lost (it never arrived; submitted again), unknown (not yet).",
    ["outcome"],
)

# --- jobs ---
JOBS = Gauge(
    f"{PREFIX}_managed_jobs",
    "Current runs of managed jobs by queue and last known AWS status.",
    ["queue", "status"],
)
COMMIT_TO_SUBMIT = Histogram(
    f"{PREFIX}_commit_to_submit_seconds",
    "Time from a commit to the SubmitJob it caused.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)

# --- AWS API ---
AWS_REQUESTS = Counter(
    f"{PREFIX}_aws_requests_total",
    "HTTP requests sent to AWS Batch (retries included).",
    ["operation"],
)
AWS_REQUEST_ERRORS = Counter(
    f"{PREFIX}_aws_request_errors_total",
    "HTTP requests to AWS Batch answered with an error (retries included), by operation and "
    "AWS error code (or the connection error's class name).",
    ["operation", "code"],
)
AWS_ERRORS = Counter(
    f"{PREFIX}_aws_errors_total",
    "Failed AWS Batch calls after retries, by operation and code.",
    ["operation", "code"],
)
AWS_THROTTLES = Counter(
    f"{PREFIX}_aws_throttles_total", "Calls that ended throttled after retries.", ["operation"]
)
AWS_CALL_SECONDS = Histogram(
    f"{PREFIX}_aws_call_duration_seconds",
    "Wall time of one AWS Batch call, retries included.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# --- audit ---
GIT_NOTES = Counter(
    f"{PREFIX}_git_notes_total",
    "Git notes of applied commits by result (written locally, pushed, failed).",
    ["result"],
)


# --- known label values, exported as 0 from the start ---
# A counter that appears only when it first moves makes rate() blind to its first
# increment and leaves dashboards empty; pre-create the bounded label sets we know.
PASS_RESULTS = ("ok", "degraded", "source-error", "error", "lease-lost")
FETCH_ERROR_REASONS = (
    "config",
    "not-a-repository",
    "unreachable",
    "branch-missing",
    "fetch-failed",
    "checkout-failed",
    "path-missing",
    "timeout",
)
SOURCE_REJECTED_REASONS = ("untrusted", "too-many-manifests")
WEBHOOK_PROVIDERS = ("github", "gitlab")
LEASE_EVENTS = ("acquired", "lost", "released")
AWS_OPERATIONS = (
    "RegisterJobDefinition",
    "DeregisterJobDefinition",
    "DescribeJobDefinitions",
    "SubmitJob",
    "CancelJob",
    "TerminateJob",
    "DescribeJobs",
    "ListJobs",
)


def _initialize_known_labels() -> None:
    for result in PASS_RESULTS:
        PASSES.labels(result=result)
    for reason in FETCH_ERROR_REASONS:
        FETCH_ERRORS.labels(reason=reason)
    for operation in AWS_OPERATIONS:
        AWS_REQUESTS.labels(operation=operation)
        AWS_THROTTLES.labels(operation=operation)
        # The code AWS Batch throttles with (HTTP 429): throttling panels show 0, not nothing.
        AWS_REQUEST_ERRORS.labels(operation=operation, code="TooManyRequestsException")
    for reason in SOURCE_REJECTED_REASONS:
        SOURCE_REJECTED.labels(reason=reason)
    SIGNATURE_CHECKS.labels(result="trusted")
    for provider in WEBHOOK_PROVIDERS:
        for result in ("accepted", "unauthorized"):
            WEBHOOK_REQUESTS.labels(provider=provider, result=result)
    for event in LEASE_EVENTS:
        LEASE_TRANSITIONS.labels(event=event)


# --- policy and security (controller/policy.py, signatures.py, webhook.py) ---
POLICY_VIOLATIONS = Gauge(
    f"{PREFIX}_policy_violations",
    "Manifests of the last pass blocked by the team policy (or by an invalid policy file).",
)
SIGNATURE_CHECKS = Counter(
    f"{PREFIX}_signature_checks_total",
    "Signature checks of the revision to apply, by result (trusted, unsigned, "
    "bad-signature, unknown-key, key-not-allowed, ...).",
    ["result"],
)
SOURCE_REJECTED = Counter(
    f"{PREFIX}_source_rejected_total",
    "Revisions not applied because the source broke a limit or trust rule, by reason.",
    ["reason"],
)
WEBHOOK_REQUESTS = Counter(
    f"{PREFIX}_webhook_requests_total",
    "POST /webhook requests by provider (github, gitlab, unknown) and result (accepted, "
    "ignored, unauthorized, replay, too-large, bad-request).",
    ["provider", "result"],
)

# --- replicas (leader election) ---
LEADER = Gauge(
    f"{PREFIX}_leader", "1 while this replica holds the lease (always 0 without a lease table)."
)
LEASE_TRANSITIONS = Counter(
    f"{PREFIX}_lease_transitions_total",
    "Lease changes seen by this replica, by event (acquired, lost, released).",
    ["event"],
)

# --- state: late answers from AWS (controller/engine/observe.py) ---
JOBS_NOT_VISIBLE = Gauge(
    f"{PREFIX}_jobs_not_visible",
    "Active runs the controller holds the ID of that AWS did not return on the last pass's "
    "read (AWS lists new jobs late; they keep their last status and are read again).",
)
JOBS_NOT_VISIBLE_TOO_LONG = Gauge(
    f"{PREFIX}_jobs_not_visible_too_long",
    "Of those, runs AWS has not returned for longer than BATCH_GITOPS_NOT_VISIBLE_WARNING.",
)
WRITER_BUSY = Counter(
    f"{PREFIX}_writer_busy_total",
    "Passes skipped because another process held the ledger's writer lock.",
)


_initialize_known_labels()


# --- commit statuses and notifications (controller.service.notify) ---
NOTIFICATIONS = Counter(
    f"{PREFIX}_notifications_total",
    "Commit statuses and notifications by sink (github, gitlab, webhook) and result: sent, "
    "failed (gave up after retries), rejected (4xx: token, permissions, repository), "
    "dropped (queue full), rate-limited, superseded (a newer status of the same commit "
    "replaced it in the queue), deduplicated (the event was already sent).",
    ["sink", "result"],
)
NOTIFY_SINKS = ("github", "gitlab", "webhook")
NOTIFY_RESULTS = (
    "sent",
    "failed",
    "rejected",
    "dropped",
    "rate-limited",
    "superseded",
    "deduplicated",
)
for _sink in NOTIFY_SINKS:
    for _result in NOTIFY_RESULTS:
        NOTIFICATIONS.labels(sink=_sink, result=_result)
