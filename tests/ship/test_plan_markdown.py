"""``plan --output markdown``: the pull-request comment, pinned by golden files.

Each scenario runs the real pipeline (a git repository in tmp_path, boto3 over
HTTP to moto, a SQLite ledger), takes the dry-run pass's ``as_dict()`` and
renders it. Commit dates are fixed so revisions are stable; AWS job IDs (random
in moto) are replaced by ``job-id-N`` in order of appearance. Regenerate the
golden files with ``UPDATE_GOLDEN=1 pytest tests/ship/test_plan_markdown.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from controller.cli.markdown import COMMENT_MARKER, render_plan
from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo
from tests.support.cli import run_cli
from tests.support.manifests import definition, job

TESTDATA = Path(__file__).parent / "testdata"
LINK_BASE = "https://github.com/example/batch-manifests/blob/{sha}/"
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")

DEFINITION = definition("trainer")


@pytest.fixture(autouse=True)
def fixed_commit_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same tree + same author + same dates = same SHA on every run."""
    for variable in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.setenv(variable, "2026-01-02T03:04:05+00:00")


def normalized(data: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(data)
    ids: dict[str, str] = {}
    text = _UUID.sub(lambda m: ids.setdefault(m.group(0), f"job-id-{len(ids) + 1}"), text)
    result: dict[str, Any] = json.loads(text)
    return result


def check_golden(name: str, data: dict[str, Any], link_base: str = "") -> str:
    rendered = render_plan(normalized(data), link_base)
    golden = TESTDATA / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} is missing: run with UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(), f"{golden.name} differs:\n{rendered}"
    return rendered


def test_in_sync(controller: Controller, repo: GitRepo) -> None:
    """After a pass applied everything, the comment says the merge changes nothing."""
    repo.write("definitions/trainer.json", DEFINITION)
    repo.write("jobs/nightly.json", job("nightly"))
    repo.commit("nightly")
    assert controller.reconcile().result == "ok"
    planned = controller.reconcile(dry_run=True).as_dict()
    assert planned["actions"] == []
    text = check_golden("in-sync", planned)
    assert "In sync" in text


def test_changes_pending(
    controller: Controller, repo: GitRepo, moto: demo_backend.MotoBatch
) -> None:
    """A changed definition, a new job, a changed job whose queued run is replaced, and
    a removed queued job: register, submit, cancel rows with links to the files."""
    demo_backend.set_mode("queued")
    repo.write("definitions/trainer.json", DEFINITION)
    repo.write("jobs/nightly.json", job("nightly"))
    repo.write("jobs/weekly.json", job("weekly"))
    repo.commit("first")
    assert controller.reconcile().result == "ok"

    changed = {**DEFINITION, "containerProperties": {"image": "busybox:1.36", "vcpus": 1}}
    changed["containerProperties"]["memory"] = 256
    repo.write("definitions/trainer.json", changed)
    repo.write("jobs/nightly.json", job("nightly", parameters={"day": "monday"}))
    repo.write("teams/analytics/report.json", job("report"))
    repo.remove("jobs/weekly.json")
    sha = repo.commit("second")
    planned = controller.reconcile(dry_run=True).as_dict()
    actions = [(a["action"], a["name"]) for a in planned["actions"]]
    assert ("register", "trainer") in actions and ("cancel", "weekly") in actions
    text = check_golden("changes-pending", planned, LINK_BASE.format(sha=sha))
    assert f"blob/{sha}/teams/analytics/report.json" in text


def test_held_prunes(controller: Controller, repo: GitRepo, moto: demo_backend.MotoBatch) -> None:
    """Removing every one of 12 queued jobs trips the mass-prune guard: the comment lists
    them as held with the guard's reason, and nothing to cancel."""
    demo_backend.set_mode("queued")
    repo.write("definitions/trainer.json", DEFINITION)
    for index in range(12):
        repo.write(f"jobs/shard-{index:02d}.json", job(f"shard-{index:02d}"))
    repo.commit("shards")
    assert controller.reconcile().result == "ok"
    for index in range(12):
        repo.remove(f"jobs/shard-{index:02d}.json")
    repo.commit("drop shards")
    planned = controller.reconcile(dry_run=True).as_dict()
    assert len(planned["held"]) == 12 and planned["held_reason"]
    text = check_golden("held-prunes", planned)
    assert "Held prunes" in text and "Jobs to cancel" not in text


def test_validation_errors(controller: Controller, repo: GitRepo) -> None:
    """Invalid files are listed with file, field and message; valid ones still plan."""
    repo.write("definitions/trainer.json", DEFINITION)
    repo.write("jobs/typo.json", {**job("typo"), "jobQeue": "x"})
    repo.write("jobs/bad.yaml", "jobName: [unclosed\n")
    repo.write("jobs/good.json", job("good", retryStrategy={"attempts": "three"}))
    repo.write("jobs/fine.json", job("fine"))
    sha = repo.commit("typos")
    planned = controller.reconcile(dry_run=True).as_dict()
    assert len(planned["errors"]) >= 3
    text = check_golden("validation-errors", planned, LINK_BASE.format(sha=sha))
    assert "jobQeue" in text and "did you mean 'jobQueue'" in text


def test_table_cells_are_escaped() -> None:
    """A pipe or newline in a message cannot break the table (pure renderer check)."""
    text = render_plan(
        {
            "revision": "a" * 40,
            "author": "Ada",
            "errors": [{"path": "x|y.json", "field": "a", "message": "bad | worse\nnext"}],
        }
    )
    row = next(line for line in text.splitlines() if line.startswith("| `x"))
    assert row.count(" | ") == 2 and "bad \\| worse next" in row


def test_source_error_comment() -> None:
    """A pass that could not read its source says so instead of claiming 'in sync'."""
    text = render_plan({"result": "source-error", "message": "branch 'nope' not found"})
    assert "branch 'nope' not found" in text and "In sync" not in text


def test_error_with_a_revision_is_not_in_sync() -> None:
    """A pass that read its revision but refused to plan (e.g. an empty ledger while AWS
    holds this controller's jobs) shows the reason, never 'In sync'."""
    text = render_plan(
        {
            "result": "error",
            "revision": "b" * 40,
            "author": "Ada",
            "message": "ledger.sqlite: the ledger is empty; run batch-gitops ledger rebuild",
            "actions": [],
        }
    )
    assert "Not planned (error)" in text and "ledger rebuild" in text
    assert "In sync" not in text


def test_cli_plan_markdown(cli_env: dict[str, str], repo: GitRepo) -> None:
    """`batch-gitops plan --output markdown --link-base URL` in its own process prints
    the comment (marker first, linked files) and exits 2: changes pending."""
    repo.write("definitions/trainer.json", DEFINITION)
    repo.write("jobs/nightly.json", job("nightly"))
    sha = repo.commit("nightly")
    link = LINK_BASE.format(sha=sha)
    result = run_cli("plan", "-o", "markdown", "--link-base", link, env=cli_env)
    assert result.returncode == 2, result.stderr
    assert result.stdout.startswith(COMMENT_MARKER)
    assert f"[`jobs/nightly.json`]({link}jobs/nightly.json)" in result.stdout
    assert "### Jobs to submit" in result.stdout
