"""The Grafana dashboard of batch-gitops, generated with grafanalib.

``python -m controller.dashboard`` rewrites ``deploy/grafana/batch-gitops.json``;
``--check`` exits 1 when the committed file is stale (a test runs it).
:data:`PANELS` is the single list of panels and their PromQL: the dashboard is
built from it, and ``tests/observability`` evaluates every expression against a
real Prometheus scraping a live controller, so no panel can silently go empty.

grafanalib is a test/deploy-time dependency only; the controller never imports
this module.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

TARGET = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "batch-gitops.json"
DATASOURCE = "${datasource}"
RATE = "$__rate_interval"
THROTTLE_CODES = "TooManyRequestsException|ThrottlingException|Throttling|RequestLimitExceeded"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class PanelSpec:
    row: str
    title: str
    kind: str  # timeseries | stat | table
    queries: tuple[Query, ...]
    unit: str = ""
    description: str = ""
    stacked: bool = False


def _q(expr: str, legend: str = "", instant: bool = False) -> Query:
    return Query(expr, legend, instant)


PANELS: tuple[PanelSpec, ...] = (
    # --- reconcile passes ---
    PanelSpec(
        "Reconcile passes",
        "Since last successful pass",
        "stat",
        (_q("time() - max(batch_gitops_last_successful_pass_timestamp_seconds)"),),
        unit="s",
        description="Alert BatchGitopsNoSuccessfulPass fires above 15 minutes.",
    ),
    PanelSpec(
        "Reconcile passes",
        "Passes by result",
        "timeseries",
        (
            _q(
                f"sum by (result) (rate(batch_gitops_passes_total[{RATE}]))",
                "{{result}}",
            ),
        ),
        unit="ops",
        stacked=True,
    ),
    PanelSpec(
        "Reconcile passes",
        "Pass duration",
        "timeseries",
        (
            _q(
                "histogram_quantile(0.5, sum by (le) "
                f"(rate(batch_gitops_pass_duration_seconds_bucket[{RATE}])))",
                "p50",
            ),
            _q(
                "histogram_quantile(0.95, sum by (le) "
                f"(rate(batch_gitops_pass_duration_seconds_bucket[{RATE}])))",
                "p95",
            ),
        ),
        unit="s",
    ),
    # --- source and revisions ---
    PanelSpec(
        "Source and revisions",
        "Revision: latest attempted vs applied",
        "table",
        (
            _q("max by (revision) (batch_gitops_attempted_revision_info)", instant=True),
            _q("max by (revision) (batch_gitops_applied_revision_info)", instant=True),
        ),
        description="A: the head the last pass read. B: the last revision applied "
        "without error. They differ while a commit is invalid or failing.",
    ),
    PanelSpec(
        "Source and revisions",
        "Latest revision not yet applied",
        "stat",
        (
            _q(
                "count(batch_gitops_attempted_revision_info unless on (revision) "
                "batch_gitops_applied_revision_info) or vector(0)"
            ),
        ),
        description="1 while the head of the branch has not been applied cleanly.",
    ),
    PanelSpec(
        "Source and revisions",
        "Applied revision age",
        "stat",
        (_q("max(batch_gitops_applied_revision_age_seconds)"),),
        unit="s",
        description="Time since the applied commit was made.",
    ),
    PanelSpec(
        "Source and revisions",
        "Source fetch",
        "timeseries",
        (
            _q(
                "histogram_quantile(0.95, sum by (le) "
                f"(rate(batch_gitops_source_fetch_duration_seconds_bucket[{RATE}])))",
                "fetch p95 (s)",
            ),
            _q(
                f"sum by (reason) (rate(batch_gitops_source_fetch_errors_total[{RATE}]))",
                "errors/s {{reason}}",
            ),
            _q("min(batch_gitops_source_ready)", "source ready"),
        ),
    ),
    PanelSpec(
        "Source and revisions",
        "Manifests by kind and validity",
        "timeseries",
        (_q("sum by (kind, valid) (batch_gitops_manifests)", "{{kind}} valid={{valid}}"),),
    ),
    PanelSpec(
        "Source and revisions",
        "Invalid manifests",
        "stat",
        (_q('sum(batch_gitops_manifests{valid="false"})'),),
        description="Run `batch-gitops validate` on the repository for file, field and fix.",
    ),
    # --- jobs and actions ---
    PanelSpec(
        "Jobs and actions",
        "Managed jobs by status per queue",
        "timeseries",
        (
            _q(
                "sum by (queue, status) (batch_gitops_managed_jobs)",
                "{{queue}} {{status}}",
            ),
        ),
        stacked=True,
    ),
    PanelSpec(
        "Jobs and actions",
        "Submits, cancels and terminations per queue",
        "timeseries",
        (
            _q(
                "sum by (action, queue) (rate(batch_gitops_actions_total"
                f'{{action=~"submit|cancel|terminate"}}[{RATE}]))',
                "{{action}} {{queue}}",
            ),
        ),
        unit="ops",
    ),
    PanelSpec(
        "Jobs and actions",
        "Actions by result",
        "timeseries",
        (
            _q(
                f"sum by (action, result) (increase(batch_gitops_actions_total[{RATE}]))",
                "{{action}} {{result}}",
            ),
        ),
    ),
    PanelSpec(
        "Jobs and actions",
        "Actions pending",
        "stat",
        (_q("max(batch_gitops_pending_actions)"),),
        description="What the current pass has still to apply (counts down while it runs); "
        "actions its time budget deferred stay here until a later pass applies them.",
    ),
    PanelSpec(
        "Jobs and actions",
        "Held prunes",
        "stat",
        (_q("max(batch_gitops_held_prunes)"),),
        description="Prunes held by the mass-prune guard; acknowledge with --allow-mass-prune.",
    ),
    PanelSpec(
        "Jobs and actions",
        "Commit to submit",
        "timeseries",
        (
            _q(
                "histogram_quantile(0.95, sum by (le) "
                f"(rate(batch_gitops_commit_to_submit_seconds_bucket[{RATE}])))",
                "p95",
            ),
        ),
        unit="s",
    ),
    # --- AWS API ---
    PanelSpec(
        "AWS API",
        "AWS requests by operation",
        "timeseries",
        (
            _q(
                f"sum by (operation) (rate(batch_gitops_aws_requests_total[{RATE}]))",
                "{{operation}}",
            ),
        ),
        unit="reqps",
    ),
    PanelSpec(
        "AWS API",
        "AWS errors by operation and code",
        "timeseries",
        (
            _q(
                f"sum by (operation, code) (rate(batch_gitops_aws_request_errors_total[{RATE}]))",
                "attempt {{operation}} {{code}}",
            ),
            _q(
                f"sum by (operation, code) (rate(batch_gitops_aws_errors_total[{RATE}]))",
                "failed call {{operation}} {{code}}",
            ),
        ),
        unit="reqps",
        description="Attempts: every HTTP answer with an error, retried or not. "
        "Failed calls: what was still an error after retries.",
    ),
    PanelSpec(
        "AWS API",
        "AWS throttling",
        "timeseries",
        (
            _q(
                "sum by (operation) (rate(batch_gitops_aws_request_errors_total"
                f'{{code=~"{THROTTLE_CODES}"}}[{RATE}]))',
                "throttled attempts {{operation}}",
            ),
            _q(
                f"sum by (operation) (rate(batch_gitops_aws_throttles_total[{RATE}]))",
                "throttled after retries {{operation}}",
            ),
        ),
        unit="reqps",
    ),
    PanelSpec(
        "AWS API",
        "AWS call duration p95",
        "timeseries",
        (
            _q(
                "histogram_quantile(0.95, sum by (operation, le) "
                f"(rate(batch_gitops_aws_call_duration_seconds_bucket[{RATE}])))",
                "{{operation}}",
            ),
        ),
        unit="s",
    ),
    # --- policy, trust and replicas ---
    PanelSpec(
        "Policy, trust and replicas",
        "Manifests blocked by policy",
        "stat",
        (_q("max(batch_gitops_policy_violations)"),),
        description="Manifests the team policy (.batch-gitops/policy.yaml) blocked in the "
        "last pass; `batch-gitops validate` names the file, the rule and the policy line.",
    ),
    PanelSpec(
        "Policy, trust and replicas",
        "Rejected revisions and signature checks",
        "timeseries",
        (
            _q(
                f"sum by (reason) (increase(batch_gitops_source_rejected_total[{RATE}]))",
                "rejected {{reason}}",
            ),
            _q(
                f"sum by (result) (increase(batch_gitops_signature_checks_total[{RATE}]))",
                "signature {{result}}",
            ),
        ),
        description="A rejected head is not applied; the last applied revision stays in "
        "force (alert BatchGitopsRevisionRejected).",
    ),
    PanelSpec(
        "Policy, trust and replicas",
        "Webhook requests by result",
        "timeseries",
        (
            _q(
                "sum by (provider, result) "
                f"(increase(batch_gitops_webhook_requests_total[{RATE}]))",
                "{{provider}} {{result}}",
            ),
        ),
        description="unauthorized, replay and too-large requests never start a pass.",
    ),
    PanelSpec(
        "Policy, trust and replicas",
        "Commit statuses and notifications by result",
        "timeseries",
        (
            _q(
                f"sum by (sink, result) (increase(batch_gitops_notifications_total[{RATE}]))",
                "{{sink}} {{result}}",
            ),
        ),
        description="Statuses posted to GitHub/GitLab and webhook messages: failed and "
        "rejected mean the forge or chat is down or refuses the token (docs/notifications.md).",
    ),
    PanelSpec(
        "Policy, trust and replicas",
        "Lease: replicas leading and hand-overs",
        "timeseries",
        (
            _q("sum(batch_gitops_leader)", "replicas leading"),
            _q(
                f"sum by (event) (increase(batch_gitops_lease_transitions_total[{RATE}]))",
                "{{event}}",
            ),
        ),
        description="With a lease table exactly one replica leads (0 in single-replica "
        "mode, which needs no lease); more than one fires BatchGitopsSplitLeadership.",
    ),
)


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard, in panel order."""
    return [query.expr for panel in PANELS for query in panel.queries]


def _panel(spec: PanelSpec, grid: g.GridPos) -> Any:
    targets = [
        g.Target(
            expr=q.expr,
            legendFormat=q.legend,
            refId=chr(ord("A") + i),
            instant=q.instant,
            format="table" if spec.kind == "table" else "time_series",
            datasource=DATASOURCE,
        )
        for i, q in enumerate(spec.queries)
    ]
    common: dict[str, Any] = {
        "title": spec.title,
        "dataSource": DATASOURCE,
        "targets": targets,
        "gridPos": grid,
        "description": spec.description or None,
    }
    if spec.kind == "stat":
        return g.Stat(
            **common,
            format=spec.unit or "none",
            reduceCalc="lastNotNull",
            thresholds=[g.Threshold("green", 0, 0.0)],
        )
    if spec.kind == "table":
        return g.Table(**common)
    return g.TimeSeries(
        **common,
        unit=spec.unit,
        stacking={"mode": "normal", "group": "A"} if spec.stacked else {"mode": "none"},
        fillOpacity=30 if spec.stacked else 10,
    )


def build() -> Any:
    """The grafanalib Dashboard: one collapsible row per group, panels 8 wide."""
    panels: list[Any] = []
    y = 0
    row = ""
    x = 0
    for spec in PANELS:
        if spec.row != row:
            if row:
                y += 8
            row, x = spec.row, 0
            panels.append(g.RowPanel(title=row, gridPos=g.GridPos(h=1, w=24, x=0, y=y)))
            y += 1
        if x >= 24:
            x, y = 0, y + 8
        panels.append(_panel(spec, g.GridPos(h=8, w=8, x=x, y=y)))
        x += 8
    return g.Dashboard(
        title="batch-gitops",
        uid="batch-gitops",
        description="GitOps controller for AWS Batch: passes, revisions, jobs, actions, AWS API.",
        tags=["batch-gitops", "aws-batch"],
        timezone="browser",
        refresh="30s",
        time=g.Time("now-3h", "now"),
        panels=panels,
        templating=g.Templating(
            list=[
                g.Template(
                    name="datasource",
                    label="Prometheus",
                    query="prometheus",
                    type="datasource",
                )
            ]
        ),
    ).auto_panel_ids()


def render() -> str:
    return json.dumps(build().to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    rendered = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != rendered:
            print(f"{TARGET} is stale: run python -m controller.dashboard", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
