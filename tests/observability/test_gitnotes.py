"""Git notes per applied commit, pushed to a real bare remote over file://: auditors read
what a commit caused with plain git, concurrent note writers are merged, and a refused push
never fails a pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo, make_controller
from tests.support.controllers import make_settings
from tests.support.manifests import definition
from tests.support.manifests import echo_job as job

DEFINITION = definition("trainer")


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=check
    )


def note(remote: Path, sha: str) -> str:
    shown = git(remote, "notes", "--ref=batch-gitops", "show", sha, check=False)
    return shown.stdout if shown.returncode == 0 else ""


@pytest.fixture
def remote(repo: GitRepo, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    repo.git("remote", "add", "origin", str(bare))
    return bare


def publish(repo: GitRepo, message: str) -> str:
    sha = repo.commit(message)
    repo.git("push", "-q", "origin", "main")
    return sha


@pytest.fixture
def noting(moto: demo_backend.MotoBatch, remote: Path, tmp_path: Path) -> Controller:
    return make_controller(make_settings(f"file://{remote}", tmp_path, git_notes=True))


def test_note_per_applied_commit_readable_from_a_fresh_clone(
    noting: Controller, repo: GitRepo, remote: Path, tmp_path: Path
) -> None:
    """A pass that acts pushes a note listing each action with its AWS id; a pass with
    nothing to do adds nothing; the next commit gets its own note; a fresh clone shows them
    with `git log --notes=batch-gitops`."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/alpha.json", job("alpha"))
    first = publish(repo, "alpha")
    assert noting.reconcile().result == "ok"
    alpha_id = noting.ledger.current_jobs()[("test-queue", "alpha")].job_id
    text = note(remote, first)
    assert "register" in text and "trainer [defs/trainer.json] -> ok arn:aws:batch:" in text
    assert f"test-queue/alpha [jobs/alpha.json] -> ok {alpha_id}" in text

    assert noting.reconcile().result == "ok"  # in sync: no action, no new note
    assert note(remote, first) == text

    repo.write("jobs/alpha.json", job("alpha", "2"))
    second = publish(repo, "alpha v2")
    assert noting.reconcile().result == "ok"
    new_id = noting.ledger.current_jobs()[("test-queue", "alpha")].job_id
    assert f"-> ok {new_id}" in note(remote, second)
    assert note(remote, first) == text

    clone = tmp_path / "auditor"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    git(clone, "fetch", "-q", "origin", "refs/notes/*:refs/notes/*")
    history = git(clone, "log", "--notes=batch-gitops", "--format=%H%n%N").stdout
    assert alpha_id in history and new_id in history


def test_concurrent_note_writer_is_merged_not_overwritten(
    noting: Controller, repo: GitRepo, remote: Path, tmp_path: Path
) -> None:
    """Someone else pushes a note to the same notes ref between two passes; the controller's
    next note is merged with it, and both are on the remote."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/alpha.json", job("alpha"))
    first = publish(repo, "alpha")
    assert noting.reconcile().result == "ok"

    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    git(other, "fetch", "-q", "origin", "refs/notes/*:refs/notes/*")
    git(other, "-c", "user.name=Eve", "-c", "user.email=eve@example.com", "notes",
        "--ref=batch-gitops", "append", "-m", "reviewed by eve", first)  # fmt: skip
    git(other, "push", "-q", "origin", "refs/notes/batch-gitops")

    repo.write("jobs/beta.json", job("beta"))
    second = publish(repo, "beta")
    assert noting.reconcile().result == "ok"
    assert "reviewed by eve" in note(remote, first)
    assert "test-queue/alpha" in note(remote, first)
    assert "test-queue/beta" in note(remote, second)


def test_refused_push_is_counted_and_never_fails_the_pass(
    noting: Controller, repo: GitRepo, remote: Path
) -> None:
    """A remote that refuses notes (a pre-receive hook, as without push rights): the pass is
    still ok, its jobs are submitted, and the failure is counted in
    batch_gitops_git_notes_total{result="failed"}."""
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'notes are read-only here' >&2\nexit 1\n")
    hook.chmod(0o755)
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/alpha.json", job("alpha"))
    sha = repo.commit("alpha")
    hook.unlink()  # the branch itself may be pushed ...
    repo.git("push", "-q", "origin", "main")
    hook.write_text("#!/bin/sh\necho 'notes are read-only here' >&2\nexit 1\n")  # ... notes not
    hook.chmod(0o755)
    failed = REGISTRY.get_sample_value("batch_gitops_git_notes_total", {"result": "failed"}) or 0
    outcome = noting.reconcile()
    assert outcome.result == "ok"
    assert noting.ledger.current_jobs()[("test-queue", "alpha")].job_id
    assert REGISTRY.get_sample_value("batch_gitops_git_notes_total", {"result": "failed"}) == (
        failed + 1
    )
    assert note(remote, sha) == ""


def test_local_repository_gets_the_note_directly(controller: Controller, repo: GitRepo) -> None:
    """With a local path as the source, the note is written into that repository."""
    controller.settings.git_notes = True
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/alpha.json", job("alpha"))
    sha = repo.commit("alpha")
    assert controller.reconcile().result == "ok"
    alpha_id = controller.ledger.current_jobs()[("test-queue", "alpha")].job_id
    assert f"-> ok {alpha_id}" in note(repo.path, sha)
