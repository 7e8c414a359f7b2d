"""The performance paths of a pass give the same answers as the slow ones.

* an unchanged revision reuses the last desired state (no tree listing, no parsing),
  and a new commit or a moved ``policy_from`` ref does not;
* ``git ls-tree`` lists exactly the manifests GitPython's tree walk finds (odd names,
  sub-directories, symlinks and non-manifest files included);
* new blobs read in several ``cat-file --batch`` batches parse exactly as one by one.

Real git repositories and a real moto endpoint (the ``controller`` fixture).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import partial
from typing import Any

import git
import pytest

from controller.engine import reconcile
from controller.engine.reconcile import run_pass
from controller.model.manifests import is_manifest_path
from controller.source import manifest_cache
from controller.source.manifest_cache import ManifestCache
from controller.source.repository import GitSource, make_source
from tests.conftest import Controller, GitRepo
from tests.support.manifests import definition
from tests.support.manifests import job as make_job

DEFINITION = definition("sleeper")
job = partial(make_job, definition="sleeper")


class CountingSource:
    """A GitSource that counts snapshots (our own boundary; the git underneath is real)."""

    def __init__(self, source: GitSource) -> None:
        self.source = source
        self.snapshots = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def snapshot(self, revision: str | None = None) -> Any:
        self.snapshots += 1
        return self.source.snapshot(revision)


def test_unchanged_revision_reuses_the_desired_state(controller: Controller, repo: GitRepo) -> None:
    """Second pass on the same commit: no snapshot, the very same DesiredState object;
    after a commit: a new snapshot and the new job is submitted."""
    repo.write("jobs/a.json", job("a"))
    repo.write("definitions/sleeper.json", DEFINITION)
    repo.commit("a")
    source = CountingSource(make_source(controller.settings))
    cache = ManifestCache()

    def run() -> reconcile.PassResult:
        return run_pass(
            controller.settings,
            source,  # type: ignore[arg-type]
            controller.api,
            controller.ledger,
            cache=cache,
        )

    first = run()
    second = run()
    assert first.result == second.result == "ok"
    assert source.snapshots == 1
    assert second.desired is first.desired
    assert second.counts().get("submit_ok", 0) == 0

    repo.write("jobs/b.json", job("b"))
    repo.commit("b")
    third = run()
    assert source.snapshots == 2
    assert third.result == "ok" and third.counts().get("submit_ok") == 1
    assert set(third.desired.jobs) == {("test-queue", "a"), ("test-queue", "b")}  # type: ignore[union-attr]


def test_moved_policy_ref_invalidates_the_reused_state(
    controller: Controller, repo: GitRepo
) -> None:
    """With policy_from set, moving that ref (same manifest revision) builds again."""
    repo.write("jobs/a.json", job("a"))
    repo.commit("a")
    repo.git("branch", "policy")
    settings = controller.settings.model_copy(update={"policy_from": "policy"})
    source = CountingSource(make_source(settings))
    cache = ManifestCache()
    run_pass(settings, source, controller.api, controller.ledger, cache=cache)  # type: ignore[arg-type]
    run_pass(settings, source, controller.api, controller.ledger, cache=cache)  # type: ignore[arg-type]
    assert source.snapshots == 1
    repo.git("checkout", "-q", "policy")
    repo.write("README.md", "policy branch moves")
    repo.commit("move policy")
    repo.git("checkout", "-q", "main")
    run_pass(settings, source, controller.api, controller.ledger, cache=cache)  # type: ignore[arg-type]
    assert source.snapshots == 2


@pytest.mark.parametrize("subdir", ["", "team a"])
def test_ls_tree_lists_what_the_tree_walk_finds(repo: GitRepo, subdir: str) -> None:
    """Names with spaces, quotes and non-ASCII letters, nested folders, a symlink, a
    non-manifest file and a dot-folder: the same (path, blob) pairs as GitPython."""
    names = [
        "team a/x.json",
        'team a/we "ird" name.yaml',
        "team a/ünïcode/y.yml",
        "team a/deep/er/z.json",
        "team a/notes.txt",
        "team a/.hidden/h.json",
        "other/o.json",
    ]
    for name in names:
        repo.write(name, json.dumps(job("j")))
    os.symlink("x.json", repo.path / "team a" / "link.json")
    revision = repo.commit("files")
    source = GitSource(str(repo.path), subdir=subdir)
    snapshot = source.snapshot(revision)

    tree = git.Repo(repo.path).commit(revision).tree
    if subdir:
        tree = tree / subdir
    prefix = len(subdir) + 1 if subdir else 0
    expected = {
        (str(item.path), str(item.hexsha))
        for item in tree.traverse()
        if isinstance(item, git.Blob)
        and item.mode != 0o120000
        and is_manifest_path(str(item.path)[prefix:])
    }
    assert set(snapshot.files) == expected and len(snapshot.files) == len(expected)
    assert all(snapshot.sizes[blob] == len(snapshot.read(blob)) for _, blob in snapshot.files)
    assert not any("link.json" in path or "notes.txt" in path for path, _ in snapshot.files)


def test_batched_reads_parse_like_single_reads(
    controller: Controller, repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a read batch of a few hundred bytes, the pass itself reads the 13 new blobs
    in more than three batches (many cat-file calls), and every manifest is parsed from
    its own bytes: each job is submitted once, under its own name."""
    for index in range(12):
        repo.write(f"jobs/j{index:02d}.json", job(f"j{index:02d}"))
    repo.write("definitions/sleeper.json", DEFINITION)
    repo.commit("twelve")
    monkeypatch.setattr(manifest_cache, "READ_BATCH_BYTES", 300)
    batches = list(
        manifest_cache._read_batches(
            list(make_source(controller.settings).snapshot().files),
            make_source(controller.settings).snapshot().sizes,
            None,
        )
    )
    assert len(batches) > 3
    read: list[int] = []  # the batches the pass reads, by size
    real_batches = manifest_cache._read_batches

    def counted(*args: Any) -> Iterator[list[tuple[str, str]]]:
        for batch in real_batches(*args):
            read.append(len(batch))
            yield batch

    monkeypatch.setattr(manifest_cache, "_read_batches", counted)
    outcome = controller.reconcile()
    assert len(read) > 3 and sum(read) == 13
    assert outcome.result == "ok" and outcome.counts().get("submit_ok") == 12
    names = sorted(key[1] for key in outcome.desired.jobs)  # type: ignore[union-attr]
    assert names == [f"j{index:02d}" for index in range(12)]
