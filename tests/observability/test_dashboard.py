"""The Grafana dashboard and the alert rules agree with the metrics the controller exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY

from controller import dashboard, metrics

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bbatch_gitops_[a-z_]+")


# The series names each metric type exposes (a labelled family has no samples until used).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def _exported_names() -> set[str]:
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("batch_gitops_")
        for suffix in SUFFIXES[family.type]
    }


def test_committed_dashboard_is_generated_from_code() -> None:
    """deploy/grafana/batch-gitops.json is exactly what `python -m controller.dashboard` writes."""
    result = subprocess.run(
        [sys.executable, "-m", "controller.dashboard", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_dashboard_has_the_panels_the_issue_asks_for() -> None:
    """Pass rate/duration, applied vs latest revision, jobs by status per queue, submit/cancel
    rates, AWS errors/throttles, held prunes and invalid manifests each have a panel, and the
    JSON Grafana imports carries the same expressions as dashboard.PANELS."""
    data = json.loads(dashboard.TARGET.read_text())
    exprs_by_title = {
        panel["title"]: [t["expr"] for t in panel.get("targets", [])]
        for panel in data["panels"]
        if panel["type"] != "row"
    }
    wanted = {
        "Passes by result": "batch_gitops_passes_total",
        "Pass duration": "batch_gitops_pass_duration_seconds_bucket",
        "Revision: latest attempted vs applied": "batch_gitops_applied_revision_info",
        "Managed jobs by status per queue": "by (queue, status) (batch_gitops_managed_jobs)",
        "Submits, cancels and terminations per queue": 'action=~"submit|cancel|terminate"',
        "AWS errors by operation and code": "batch_gitops_aws_request_errors_total",
        "AWS throttling": "TooManyRequestsException",
        "Held prunes": "batch_gitops_held_prunes",
        "Invalid manifests": 'batch_gitops_manifests{valid="false"}',
        "Manifests blocked by policy": "batch_gitops_policy_violations",
        "Webhook requests by result": "batch_gitops_webhook_requests_total",
        "Lease: replicas leading and hand-overs": "batch_gitops_leader",
    }
    for title, fragment in wanted.items():
        assert any(fragment in expr for expr in exprs_by_title[title]), title
    in_json = [expr for exprs in exprs_by_title.values() for expr in exprs]
    assert in_json == dashboard.expressions()
    assert data["templating"]["list"][0]["type"] == "datasource"


def test_dashboard_and_alerts_only_use_exported_metrics() -> None:
    """Every batch_gitops_* name in the dashboard and in alerts.yml is a series the controller
    exports (a renamed metric cannot leave a panel or an alert silently empty), and every
    collector appears on the dashboard or in an alert."""
    exported = _exported_names()
    alerts = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    used = set(METRIC.findall(" ".join(dashboard.expressions()))) | set(METRIC.findall(alerts))
    assert used - exported == set()
    # Every collector an operator needs on a screen or a pager.
    families = {
        collector._name
        for collector in (
            metrics.PASS_SECONDS,
            metrics.PASSES,
            metrics.LAST_SUCCESS,
            metrics.ATTEMPTED_REVISION,
            metrics.APPLIED_REVISION,
            metrics.FETCH_SECONDS,
            metrics.FETCH_ERRORS,
            metrics.SOURCE_READY,
            metrics.REVISION_AGE,
            metrics.MANIFESTS,
            metrics.ACTIONS,
            metrics.HELD_PRUNES,
            metrics.JOBS,
            metrics.COMMIT_TO_SUBMIT,
            metrics.AWS_REQUESTS,
            metrics.AWS_REQUEST_ERRORS,
            metrics.AWS_ERRORS,
            metrics.AWS_THROTTLES,
            metrics.AWS_CALL_SECONDS,
            # issue 5 (policy, trust, webhook) and issue 3 (replicas)
            metrics.POLICY_VIOLATIONS,
            metrics.SIGNATURE_CHECKS,
            metrics.SOURCE_REJECTED,
            metrics.WEBHOOK_REQUESTS,
            metrics.LEADER,
            metrics.LEASE_TRANSITIONS,
            metrics.NOTIFICATIONS,  # issue 16
        )
    }
    unused = {
        name for name in families if not any(u == name or u.startswith(name + "_") for u in used)
    }
    assert unused == set()
