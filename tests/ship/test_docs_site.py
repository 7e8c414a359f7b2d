"""The documentation is a site that builds (issue 15): ``mkdocs build --strict`` (Material
theme) passes, so no page links a missing page or anchor; every page is in the nav; the
README stays short with its two set-up commands; each alert's runbook_url points at a
section of the built alerts page; LICENSE and CHANGELOG are what pyproject and Keep a
Changelog say."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ship.test_docs import _ci_test_command

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
SCREEN = (80, 24)  # columns, rows of the smallest terminal a newcomer reads it in


def _mkdocs_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return config


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built by mkdocs with --strict into a temporary directory."""
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def test_mkdocs_build_strict_passes(site: Path) -> None:
    """`mkdocs build --strict` succeeds with the Material theme and renders every page of
    the nav, including the architecture page and the generated configuration reference."""
    config = _mkdocs_config()
    assert config["theme"]["name"] == "material"
    for page in _nav_pages(config["nav"]):
        built = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert built.is_file(), page
    reference = (site / "configuration" / "index.html").read_text()
    assert "BATCH_GITOPS_STATE" in reference and "BATCH_GITOPS_LOG_LEVEL" in reference
    # The IAM policy is included from deploy/iam-policy.json, not copied by hand.
    assert '"Sid"' in (site / "getting-started" / "index.html").read_text().replace("&quot;", '"')


def test_every_page_is_in_the_nav() -> None:
    """No page of docs/ is left out of the navigation, and the nav names no missing page,
    including the pages other work fills (manifests, state, performance, notifications)."""
    nav = _nav_pages(_mkdocs_config()["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(nav) == pages
    expected = {
        "getting-started.md",
        "concepts.md",
        "guarantees.md",
        "operations.md",
        "security.md",
        "configuration.md",
        "architecture.md",
        "manifests.md",
        "performance.md",
        "notifications.md",
        "state.md",
    }
    assert expected <= set(nav)


def test_getting_started_names_the_prerequisites() -> None:
    """Getting started on AWS says queues and compute environments must exist, shows the
    IAM policy, the first plan and reconcile, and how to run the daemon."""
    text = (DOCS / "getting-started.md").read_text()
    for fragment in (
        "Compute environments and job queues",
        '--8<-- "deploy/iam-policy.json"',
        "batch-gitops plan --repo .",
        "batch-gitops reconcile --repo .",
        "batch-gitops run --repo",
        "--controller-id",
        "ledger.sqlite",
    ):
        assert fragment in text, fragment


def test_readme_fits_on_two_screens_with_its_two_commands() -> None:
    """The README, wrapped at 80 columns, is at most two 24-row screens, has exactly two
    shell blocks (the demo and the tests) and links the site's pages."""
    rows = sum(max(1, math.ceil(len(line) / SCREEN[0])) for line in README.splitlines())
    assert rows <= 2 * SCREEN[1], f"README is {rows} rows at {SCREEN[0]} columns"
    blocks = [b.strip() for b in re.findall(r"```sh\n(.*?)```", README, flags=re.S)]
    assert len(blocks) == 2 and blocks[0].endswith("batch-gitops demo"), blocks
    assert blocks[1] == _ci_test_command()  # the second is exactly what CI runs
    for page in ("getting-started", "concepts", "operations", "security", "configuration"):
        assert f"(docs/{page}.md)" in README, page


def test_every_alert_links_its_runbook_section(site: Path) -> None:
    """Each alert in deploy/prometheus/alerts.yml has a runbook_url under the site's URL
    whose anchor is a heading of the built alerts page."""
    base = _mkdocs_config()["site_url"]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(alerts) >= 10
    page = (site / "alerts" / "index.html").read_text()
    for rule in alerts:
        url = rule["annotations"].get("runbook_url", "")
        assert url == f"{base}alerts/#{rule['alert'].lower()}", rule["alert"]
        assert f'id="{rule["alert"].lower()}"' in page, rule["alert"]


def test_license_and_changelog() -> None:
    """LICENSE is the Apache License 2.0 pyproject declares; CHANGELOG.md follows Keep a
    Changelog and tells users of the old ledger default what happens to them."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == {"text": "Apache-2.0"}
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in changelog and "## [Unreleased]" in changelog
    assert ".batch-gitops/ledger.sqlite" in changelog and "warns" in changelog
