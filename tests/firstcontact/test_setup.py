"""Findings 2, 3 and 4 of issue 15, tried again as a new user: ``init`` then ``plan``
works; a missing branch lists the branches; the default ledger does not depend on the
working directory and read-only commands never create one; every configuration mistake
is one line naming the setting, exit 1; ``plan`` keeps 0/2/1."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo
from tests.firstcontact.conftest import DEFINITION, User, job


def _commit_all(path: Path) -> None:
    identity = ["-c", "user.name=New User", "-c", "user.email=new@example.com"]
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", *identity, "commit", "-qm", "layout"], cwd=path, check=True)


def test_init_then_plan_reads_the_branch_init_made(user: User, tmp_path: Path) -> None:
    """Finding 2: `init` makes a git repository on the branch the controller reads, so the
    next steps it prints (commit, validate, plan) work without --branch."""
    made = user.run("init", "batch-manifests", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "created a git repository in batch-manifests on branch main" in made.stdout
    assert "batch-gitops plan --repo ." in made.stdout
    target = tmp_path / "batch-manifests"
    _commit_all(target)
    assert user.run("validate", ".", cwd=target).returncode == 0
    planned = user.run("plan", "--repo", ".", cwd=target)
    assert planned.returncode == 2, planned.stdout + planned.stderr  # changes pending
    assert "+ submit" in planned.stdout and "no branch" not in planned.stdout


def test_a_missing_branch_lists_the_branches_that_exist(user: User, tmp_path: Path) -> None:
    """Finding 2: a repository on `master` (git's default on many machines) read as
    `main`, locally or through a URL, names the branches that exist and the flag to pass."""
    old = GitRepo(tmp_path / "old")
    old.git("checkout", "-q", "-b", "master")
    old.write("jobs/a.json", job("a"))
    old.commit("on master")
    for src in (str(old.path), f"file://{old.path}"):
        planned = user.run("plan", "--repo", src)
        assert planned.returncode == 1, planned.stdout
        assert "its branches: master; pass --branch master" in planned.stdout, src
        assert "in sync:" not in planned.stdout


def test_default_ledger_does_not_depend_on_the_folder(
    user: User, applied: GitRepo, tmp_path: Path
) -> None:
    """Finding 3: `reconcile` writes the ledger under $XDG_STATE_HOME keyed by controller id
    and prints where; `status` from any other folder reads that one; nothing is written in
    the working directory or the manifest repository."""
    ledger = user.default_ledger()
    assert ledger.is_file()
    again = user.run("reconcile", "--repo", str(applied.path), cwd=applied.path)
    assert again.returncode == 0
    assert again.stdout.strip().splitlines()[-1] == f"ledger: {ledger}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = user.run("status", cwd=elsewhere)
    assert shown.returncode == 0, shown.stderr
    assert "train-model-experiment-42" in shown.stdout and f"ledger: {ledger}" in shown.stdout
    assert list(elsewhere.iterdir()) == []
    assert applied.git("status", "--porcelain") == ""  # no .batch-gitops/ledger.sqlite there
    planned = user.run("plan", "--repo", ".", cwd=applied.path)
    assert planned.returncode == 0 and applied.git("status", "--porcelain") == ""


def test_read_only_commands_never_create_a_ledger(user: User, tmp_path: Path) -> None:
    """Finding 3: `status` and `history` with a mistyped --state, or with no ledger yet,
    exit 1 naming the file and create nothing; `plan` plans a first pass without one."""
    typo = tmp_path / "ledgr.sqlite"
    for args in (("status", "--state", str(typo)), ("history", "--state", str(typo))):
        result = user.run(*args)
        assert result.returncode == 1, args
        assert f"no ledger at {typo}" in result.stderr and "Traceback" not in result.stderr
    assert not typo.exists()
    assert user.run("status", "--offline").returncode == 1
    assert not user.home.exists()
    repo = GitRepo(tmp_path / "repo")
    repo.write("jobs/a.json", job("a"))
    repo.commit("a")
    planned = user.run("plan", "--repo", str(repo.path), "--controller-id", "team-a")
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert f"no ledger at {user.default_ledger('team-a')} yet" in planned.stderr
    assert not user.home.exists()


def test_a_ledger_at_the_old_default_is_used_with_a_warning(
    user: User, repo: GitRepo, tmp_path: Path
) -> None:
    """Finding 3 (upgrade): a ledger at the pre-0.2 default `.batch-gitops/ledger.sqlite`
    of the working directory keeps being used, with a warning naming both paths."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("a"))
    repo.commit("a")
    workdir = tmp_path / "ops"
    workdir.mkdir()
    old = workdir / ".batch-gitops" / "ledger.sqlite"
    first = user.run("reconcile", "--repo", str(repo.path), "--state", str(old), cwd=workdir)
    assert first.returncode == 0, first.stdout + first.stderr
    shown = user.run("status", "--offline", cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert "warning: using the ledger at the old default location" in shown.stderr
    assert str(old) in shown.stderr and str(user.default_ledger()) in shown.stderr
    assert re.search(r"^a\s+SUBMITTED", shown.stdout, flags=re.M), shown.stdout
    assert not user.default_ledger().exists()


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("plan",), {"AWS_PROFILE": "nope"}, "AWS_PROFILE: The config profile (nope)"),
        (("plan",), {"AWS_ENDPOINT_URL_BATCH": "127.0.0.1:5055"}, "AWS_ENDPOINT_URL_BATCH"),
        (("plan",), {"BATCH_GITOPS_INTERVAL": "abc"}, "BATCH_GITOPS_INTERVAL: not a duration"),
        (("run", "--interval", "abc"), {}, "--interval: not a duration: 'abc'"),
        (("status",), {"BATCH_GITOPS_AWS_RETRY_MODE": "fast"}, "BATCH_GITOPS_AWS_RETRY_MODE"),
        (
            ("run",),
            {"BATCH_GITOPS_WEBHOOK_SECRET_FILE": "/nonexistent/secret"},
            "BATCH_GITOPS_WEBHOOK_SECRET_FILE: /nonexistent/secret is not a readable file",
        ),
    ],
)
def test_configuration_mistakes_are_one_line_exit_1(
    user: User, repo: GitRepo, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    """Finding 4: a bad profile, an endpoint without a scheme, a bad duration (variable or
    flag), a bad choice or boolean, a missing secret file: exit 1, one line on stderr that
    names the setting, no traceback, no ledger created."""
    repo.write("jobs/a.json", job("a"))
    repo.commit("a")
    with_repo = () if args[0] == "status" else ("--repo", str(repo.path))
    result = user.run(*args, *with_repo, **env)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "pydantic" not in result.stderr
    assert not user.home.exists()


def test_plan_exit_codes_are_strict(user: User, applied: GitRepo) -> None:
    """Finding 4: 0 in sync (having read AWS), 2 only for pending changes, 1 for a usage
    mistake (click's own 2 would read as "changes pending" in CI)."""
    in_sync = user.run("plan", "--repo", str(applied.path))
    assert in_sync.returncode == 0 and "in sync: nothing to do (AWS Batch read)" in in_sync.stdout
    applied.write("jobs/more.json", job("more"))
    applied.commit("one more")
    assert user.run("plan", "--repo", str(applied.path)).returncode == 2
    typo = user.run("plan", "--repo", str(applied.path), "--no-such-flag")
    assert typo.returncode == 1 and "No such option" in typo.stderr


def test_nothing_says_in_sync_when_aws_cannot_be_read(
    user: User, applied: GitRepo, tmp_path: Path
) -> None:
    """Finding 4: with AWS unreachable, a ledger whose jobs all finished (so the pass needs
    no AWS read) and an empty ledger both end in exit 1 and an error, never "in sync"."""
    down = {"AWS_ENDPOINT_URL_BATCH": "http://127.0.0.1:9", "BATCH_GITOPS_AWS_MAX_ATTEMPTS": "1"}
    for command in ("plan", "reconcile"):
        known = user.run(command, "--repo", str(applied.path), **down)
        assert known.returncode == 1, known.stdout + known.stderr
        assert "AWS Batch could not be read" in known.stdout
        assert "in sync:" not in known.stdout
    empty = user.run("plan", "--repo", str(applied.path), "--state", str(tmp_path / "new"), **down)
    assert empty.returncode == 1 and "in sync:" not in empty.stdout
    assert "AWS Batch could not be checked" in empty.stdout
    status = user.run("status", **down)
    assert status.returncode == 1 and "AWS Batch could not be read" in status.stderr
    assert "train-model-42" in status.stdout  # the ledger's last known picture, said to be so


def test_a_second_repository_is_told_to_use_its_own_controller_id(
    user: User, applied: GitRepo, batch: Any, tmp_path: Path
) -> None:
    """Finding 7: a second repository reconciled with the default controller id stops
    before acting — on the shared default ledger and on a ledger of its own — and both
    messages name --controller-id; the first repository's jobs are untouched, and with its
    own id the second repository applies."""
    other = GitRepo(tmp_path / "other-team")
    other.write("defs/trainer.json", DEFINITION)
    other.write("jobs/report.json", job("report"))
    other.commit("another team's repository")
    before = batch.list_jobs(jobQueue="test-queue")["jobSummaryList"]
    shared = user.run("reconcile", "--repo", str(other.path))
    assert shared.returncode == 1 and "--controller-id" in shared.stdout, shared.stdout
    assert "is the ledger of repository 'repo', not 'other-team'" in shared.stdout
    own = user.run("reconcile", "--repo", str(other.path), "--state", str(tmp_path / "b.db"))
    assert own.returncode == 1
    assert "If jobs/train-model" in own.stdout and "give this one its own with --controller-id" in (
        own.stdout
    )
    assert batch.list_jobs(jobQueue="test-queue")["jobSummaryList"] == before
    separate = user.run("reconcile", "--repo", str(other.path), "--controller-id", "other-team")
    assert separate.returncode == 0, separate.stdout + separate.stderr
    assert f"ledger: {user.default_ledger('other-team')}" in separate.stdout
