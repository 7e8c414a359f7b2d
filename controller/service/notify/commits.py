"""What a commit's jobs came to, from the ledger's runs (pure: no I/O).

A commit's runs are the ledger's job records carrying its SHA (the commit that
last changed each manifest, not necessarily the head applied). For each job the
newest run of that commit counts. A run replaced by a later commit (no longer
current, or stopped by the controller itself: its status reason starts with
``batch-gitops:``) is neither a success nor a failure. Scheduled ticks are left
out by the caller: they run on the clock, not because of the commit.

The state, most telling first: ``failure`` (a job FAILED or its submission was
rejected), ``running``/``queued`` (some job has not finished), ``error`` (the
commit brought invalid manifests), ``success``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from controller.model.jobstatus import QUEUED_STATUSES, RUNNING_STATUSES
from controller.model.records import JobRecord

STOPPED_BY_US = "batch-gitops:"  # the reason the controller gives CancelJob/TerminateJob
DESCRIPTION_MAX = 140


@dataclass(frozen=True)
class CommitReport:
    state: str  # queued | running | success | failure | error
    description: str
    failed: tuple[JobRecord, ...] = ()  # runs that FAILED or were rejected
    active: bool = False  # some job has not finished: the status may change again

    @property
    def key(self) -> str:
        """What was (or is to be) posted: a new key means a new status."""
        return f"{self.state}|{self.description}"


def run_outcome(run: JobRecord) -> str:
    """queued | running | succeeded | failed | rejected | replaced | forgotten."""
    if run.state == "rejected":
        return "rejected"
    finished = run.state == "submitted" and run.status in ("SUCCEEDED", "FAILED", "FORGOTTEN")
    if not run.is_current and not finished:
        return "replaced"  # a later run of the job took over before this one ended
    if run.state in ("intent", "lost"):
        return "queued"  # settled or submitted again by the next pass
    status = run.status or "SUBMITTED"
    if status in QUEUED_STATUSES:
        return "queued"
    if status in RUNNING_STATUSES:
        return "running"
    if status == "SUCCEEDED":
        return "succeeded"
    if status == "FAILED":
        if (run.status_reason or "").startswith(STOPPED_BY_US):
            return "replaced"
        return "failed"
    return "forgotten"


def latest_runs(runs: list[JobRecord]) -> list[JobRecord]:
    """The newest run of each job (``runs`` oldest first, as the ledger returns them)."""
    newest: dict[tuple[str, str], JobRecord] = {}
    for run in runs:
        newest[run.key] = run
    return list(newest.values())


def commit_report(runs: list[JobRecord], invalid: list[str] | None = None) -> CommitReport | None:
    """The status of a commit with these runs (None: nothing to report)."""
    invalid = sorted(invalid or [])
    latest = latest_runs(runs)
    outcomes = [(run, run_outcome(run)) for run in latest]
    counts = Counter(outcome for _, outcome in outcomes)
    failed = tuple(run for run, outcome in outcomes if outcome in ("failed", "rejected"))
    if not latest and not invalid:
        return None
    if failed:
        state = "failure"
    elif counts["running"]:
        state = "running"
    elif counts["queued"]:
        state = "queued"
    elif invalid:
        state = "error"
    else:
        state = "success"
    active = bool(counts["running"] or counts["queued"])
    return CommitReport(state, describe(len(latest), counts, failed, invalid), failed, active)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _names(names: list[str], room: int) -> str:
    """As many names as fit in ``room`` characters, then "+N more"."""
    shown: list[str] = []
    for index, name in enumerate(names):
        rest = len(names) - index - 1
        more = f" +{rest} more" if rest else ""
        candidate = ", ".join([*shown, name])
        if len(candidate) + len(more) > room and shown:
            return ", ".join(shown) + f" +{len(names) - index} more"
        if len(candidate) + len(more) > room:  # not even one fits: cut it
            return (name[: max(1, room - len(more) - 1)] + "…" + more).strip()
        shown.append(name)
    return ", ".join(shown)


def describe(
    total: int, counts: Counter[str], failed: tuple[JobRecord, ...], invalid: list[str]
) -> str:
    """At most 140 characters (GitHub's limit): counts first, then the names that failed."""
    parts = []
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    if counts["rejected"]:
        parts.append(f"{counts['rejected']} rejected")
    for outcome in ("running", "queued", "succeeded", "replaced", "forgotten"):
        if counts[outcome]:
            word = "replaced by a later commit" if outcome == "replaced" else outcome
            word = "finished (forgotten by AWS)" if outcome == "forgotten" else word
            parts.append(f"{counts[outcome]} {word}")
    text = f"{_plural(total, 'job')}: {', '.join(parts)}" if total else ""
    if invalid:
        text += ("; " if text else "") + f"{_plural(len(invalid), 'invalid manifest')}"
    names = [run.name for run in failed] or ([] if failed else invalid)
    if not names:
        return text[:DESCRIPTION_MAX]
    label = " - failed: " if failed else ": "
    room = DESCRIPTION_MAX - len(text) - len(label)
    if room < 8:
        return text[:DESCRIPTION_MAX]
    return text + label + _names(names, room)
