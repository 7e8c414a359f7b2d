"""Render ``prometheusrule.yaml`` from ``deploy/prometheus/alerts.yml``.

The alert rules are written once, as a plain Prometheus rule file (checked by
promtool); the PrometheusRule custom resource is generated from it so the two
cannot drift. ``tests/ship`` fails when the committed file is stale.

    python3 deploy/kubernetes/render_prometheusrule.py          # rewrite
    python3 deploy/kubernetes/render_prometheusrule.py --check  # exit 1 if stale
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parent / "prometheus" / "alerts.yml"
TARGET = HERE / "prometheusrule.yaml"
HEADER = (
    "# GENERATED from deploy/prometheus/alerts.yml by render_prometheusrule.py;\n"
    "# edit alerts.yml and re-run it, never this file.\n"
)


def render(alerts_text: str) -> str:
    """The PrometheusRule manifest wrapping the rule groups of ``alerts_text``."""
    groups: Any = (yaml.safe_load(alerts_text) or {}).get("groups")
    if not isinstance(groups, list) or not groups:
        raise ValueError(f"{ALERTS}: groups: expected a non-empty list of rule groups")
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "batch-gitops",
            "labels": {"app.kubernetes.io/name": "batch-gitops"},
        },
        "spec": {"groups": groups},
    }
    body = yaml.safe_dump(resource, sort_keys=False, default_flow_style=False, width=100)
    return HEADER + "---\n" + body


def main(argv: list[str]) -> int:
    rendered = render(ALERTS.read_text())
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != rendered:
            print(f"{TARGET} is stale: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
