"""Turn the scenario results into rows: measure, value, target, met or not."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.cli_vs_controller import CliVsController
from bench.initial_sync import InitialSync
from bench.poll_cost import PollCost
from bench.throttled_commit import ThrottledCommit
from bench.unchanged_pass import DaemonMemory, UnchangedPass
from bench.webhook_latency import BusyLatency, WebhookLatency

MEMORY_TARGET_MIB = 200.0


@dataclass
class Row:
    measure: str
    value: str
    target: str
    met: bool | None  # None: reported, no target

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "-"}[self.met]


def initial_sync(result: InitialSync) -> list[Row]:
    return [
        Row(
            f"initial sync of {result.jobs} new jobs: controller / bare boto3 loop",
            f"{result.ratio:.2f} ({result.controller_seconds:.2f} s / "
            f"{result.bare_seconds:.2f} s, {result.submitted} submitted)",
            "<= 1.3",
            result.ratio <= 1.3 and result.submitted == result.jobs,
        )
    ]


def cli_vs_controller(result: CliVsController) -> list[Row]:
    rows = [
        Row(
            f"{result.jobs} new jobs: aws cli once per file / batch-gitops reconcile "
            "(process start included)",
            f"{result.ratio:.1f} ({result.cli_seconds:.1f} s / {result.controller_seconds:.2f} s)",
            ">= 30",
            result.ratio >= 30,
        )
    ]
    if result.ratio_default_limit is not None:
        assert result.controller_default_limit_seconds is not None
        rows.append(
            Row(
                f"  same, controller at the default rate limit "
                f"({result.default_rate_limit:g} calls/s)",
                f"{result.ratio_default_limit:.1f} ({result.cli_seconds:.1f} s / "
                f"{result.controller_default_limit_seconds:.2f} s)",
                "bounded by the limit",
                None,
            )
        )
    return rows


def unchanged_pass(result: UnchangedPass) -> list[Row]:
    rows = []
    for cost in result.passes:
        label = f"unchanged revision, {result.manifests} manifests, {result.active} active, "
        rows.append(
            Row(label + f"{cost.label}: write calls", str(cost.writes), "0", cost.writes == 0)
        )
        rows.append(
            Row(
                label + f"{cost.label}: read calls",
                str(cost.reads),
                f"<= {result.read_bound}",
                cost.reads <= result.read_bound and cost.result == "ok",
            )
        )
        rows.append(
            Row(
                label + f"{cost.label}: wall / one ListJobs",
                f"{cost.seconds / result.list_jobs_seconds:.1f} ({cost.seconds:.3f} s / "
                f"{result.list_jobs_seconds:.3f} s)",
                "report",
                None,
            )
        )
    return rows


def daemon_memory(result: DaemonMemory) -> list[Row]:
    return [
        Row(
            f"daemon resident memory with {result.manifests} manifests "
            f"(after {result.passes} passes)",
            f"{result.rss_mib:.0f} MiB (peak {result.peak_mib:.0f} MiB, "
            f"{result.writes} write calls)",
            f"<= {MEMORY_TARGET_MIB:.0f} MiB",
            result.peak_mib <= MEMORY_TARGET_MIB and result.writes == 0,
        )
    ]


def webhook_latency(result: WebhookLatency) -> list[Row]:
    return [
        Row(
            f"commit to first SubmitJob via {result.via}, {len(result.latencies)} commits "
            f"({result.manifests} manifests in the repo)",
            f"p50 {result.p50:.3f} s, p90 {result.p90:.3f} s, max {max(result.latencies):.3f} s",
            "p50 <= 1 s",
            result.p50 <= 1.0,
        )
    ]


def poll_cost(result: PollCost) -> list[Row]:
    unchanged, listing, changed = result.unchanged, result.ls_remote, result.changed
    return [
        Row(
            f"poll of an unchanged remote ({result.manifests} manifests): git connections, "
            "fetches, bytes sent/received",
            f"{unchanged.connections} conn, {unchanged.fetches} fetch, "
            f"{unchanged.bytes_sent}/{unchanged.bytes_received} B, pass {unchanged.seconds:.3f} s",
            "1 ls-remote, 0 fetch",
            unchanged.connections == 1 and unchanged.fetches == 0,
        ),
        Row(
            "  for scale: plain git ls-remote",
            f"{listing.connections} conn, {listing.fetches} fetch, "
            f"{listing.bytes_sent}/{listing.bytes_received} B, {listing.seconds:.3f} s",
            "-",
            None,
        ),
        Row(
            "  for scale: pass after a new commit",
            f"{changed.connections} conn, {changed.fetches} fetch, "
            f"{changed.bytes_sent}/{changed.bytes_received} B, pass {changed.seconds:.3f} s",
            "-",
            None,
        ),
    ]


# Issue 13's targets for a commit against the throttling endpoint, by SubmitJob/s allowed:
# (least submits/s including process start, most share of SubmitJobs throttled).
THROTTLED_TARGETS = {50.0: (45.0, 0.02), 25.0: (22.5, 0.05)}


def throttled_commit(result: ThrottledCommit, *, compared: bool = False) -> list[Row]:
    """``compared``: a comparison run (another rate control), reported without a target."""
    least, most = THROTTLED_TARGETS.get(result.allowed, (0.0, 1.0))
    value = (
        f"{result.submits_per_second:.1f}/s ({result.seconds:.1f} s, first SubmitJob at "
        f"{result.first_submit:.1f} s), {100 * result.throttled_share:.1f} % throttled "
        f"({result.throttled} of {result.sent}), "
        f"{'each job once' if result.exactly_once else 'NOT each job once'}"
    )
    if compared:
        return [Row(f"  same, {result.label}", value, "-", None)]
    return [
        Row(
            f"{result.jobs}-job commit, {result.label}, default settings, process start included",
            value,
            f">= {least:g}/s, <= {100 * most:g} % throttled, each job once",
            result.submits_per_second >= least
            and result.throttled_share <= most
            and result.exactly_once,
        )
    ]


def busy_latency(result: BusyLatency) -> list[Row]:
    latencies = [r.latency for r in result.rounds]
    follow_ups = [r.follow_ups for r in result.rounds]
    return [
        Row(
            f"commit to first SubmitJob, pushed {result.pushes}x during a {result.wave}-job "
            f"pass, {len(result.rounds)} rounds",
            f"p50 {statistics.median(latencies):.2f} s, of which after that pass ended: p50 "
            f"{result.p50_after_pass:.3f} s; worst beyond the pass's remaining time "
            f"{result.worst_over:.3f} s; follow-up passes per round {follow_ups}",
            "<= remaining pass time + 1 s; 1 follow-up per round",
            result.worst_over <= 1.0 and set(follow_ups) == {1},
        )
    ]
