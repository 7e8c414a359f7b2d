"""The alerting rules: valid for Prometheus, and every alert unit-tested by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.observability.tools import require

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
# What the issue asks to be alerted on, by the alert that covers it.
REQUIRED = {
    "BatchGitopsControllerDown",  # controller down
    "BatchGitopsNoSuccessfulPass",  # no successful pass in N minutes
    "BatchGitopsInvalidManifests",  # invalid manifests present
    "BatchGitopsPrunesHeld",  # held prunes waiting
    "BatchGitopsAWSThrottled",  # AWS throttling sustained
    "BatchGitopsManagedJobsFailing",  # managed jobs failing
}


def _alert_names() -> set[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_promtool_check_rules() -> None:
    """`promtool check rules` accepts alerts.yml (syntax, PromQL, templates)."""
    promtool = require("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alert_names())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules` passes: each alert fires when it should, with its labels and
    annotations, and stays quiet when it should not."""
    promtool = require("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", ALERT_TESTS.name],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """Each alert of alerts.yml appears in alerts.test.yml both with expected alerts and with
    none, and the alerts the issue asks for all exist."""
    names = _alert_names()
    assert names >= REQUIRED
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"
