"""Hostile files in the repository, each through a real pass (real git, moto, SQLite):
symlinks out of the manifest directory, oversized files, YAML alias bombs, deep
nesting, non-UTF-8, too many manifests. None crashes the pass or the daemon; each
bad file is reported by name and the good files beside it are applied."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from controller.cli.main import main
from controller.service.daemon import Daemon
from tests.conftest import Controller, GitRepo, WriteCounter
from tests.support.aws import job_names
from tests.support.manifests import definition, job
from tests.support.waiting import wait_until

GOOD = job("good", definition="d")
DEFINITION = definition("d")


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        prev, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\njobName: bomb\njobQueue: test-queue\njobDefinition: d\n"


HOSTILE: dict[str, tuple[str, bytes, str]] = {
    # case: (path, content, words of the error)
    "alias-bomb": ("jobs/bomb.yaml", billion_laughs().encode(), "expands to more than"),
    "deep-yaml": ("jobs/deep.yaml", ("x: " + "[" * 5000 + "]" * 5000).encode(), "nested deeper"),
    "deep-json": ("jobs/deep.json", ("[" * 200_000 + "]" * 200_000).encode(), "nested deeper"),
    "recursive-alias": ("jobs/loop.yaml", b"x: &x [*x]\n", "recursive YAML alias"),
    "non-utf8": ("jobs/latin1.json", b'{"jobName": "caf\xe9"}', "not UTF-8"),
    "oversized": ("jobs/huge.json", b" " * 3_000_000 + b"{}", "the limit is 1048576"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_is_reported_and_the_good_ones_applied(
    controller: Controller, repo: GitRepo, batch: Any, case: str
) -> None:
    """The pass ends (quickly) as degraded, names the hostile file with a precise
    reason, and submits the good job beside it."""
    path, content, words = HOSTILE[case]
    repo.write("defs/d.json", DEFINITION)
    repo.write("jobs/good.json", GOOD)
    (repo.path / path).parent.mkdir(parents=True, exist_ok=True)
    (repo.path / path).write_bytes(content)
    repo.commit(case)
    started = time.perf_counter()
    result = controller.reconcile()
    assert time.perf_counter() - started < 30  # a hostile file is refused, not chewed on
    assert result.result == "degraded", result.message
    assert [e.path for e in result.errors] == [path]
    assert words in result.errors[0].message
    assert job_names(batch) == ["good"]


def test_symlinks_are_never_followed(
    controller: Controller, repo: GitRepo, batch: Any, tmp_path: Path
) -> None:
    """With the manifests in a sub-directory, a committed symlink to a manifest outside
    it (and one to an absolute path) is not read: its job is never submitted, and each
    link is reported by name as an invalid file (the good job beside them is applied)."""
    repo.write("outside/secret-job.json", {**GOOD, "jobName": "from-outside"})
    repo.write("manifests/defs/d.json", DEFINITION)
    repo.write("manifests/jobs/good.json", GOOD)
    os.symlink("../../outside/secret-job.json", repo.path / "manifests/jobs/link.json")
    os.symlink("/etc/hostname", repo.path / "manifests/jobs/abs.json")
    repo.commit("links")
    assert repo.git("ls-files", "-s", "manifests/jobs/link.json").startswith("120000")
    controller.settings = controller.settings.model_copy(update={"path": "manifests"})
    result = controller.reconcile()
    assert result.result == "degraded"
    assert sorted(e.path for e in result.errors) == [
        "manifests/jobs/abs.json",
        "manifests/jobs/link.json",
    ]
    assert all("symbolic link: never followed" in e.message for e in result.errors)
    assert job_names(batch) == ["good"]


def test_validate_does_not_follow_symlinks_out_of_the_directory(tmp_path: Path) -> None:
    """Offline validate reads the directory as a pass reads a commit: symlinked
    files and directories (here pointing outside it) are not read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "job.json").write_text('{"jobName": "x", "jobQueue": "q", "bogus": 1}')
    root = tmp_path / "manifests"
    root.mkdir()
    (root / "link.json").symlink_to(outside / "job.json")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    result = CliRunner().invoke(main, ["validate", str(root), "-o", "json"])
    assert result.exit_code == 1, result.stdout
    assert '"jobs": 0' in result.stdout  # nothing behind the links was read
    assert '"path": "link.json"' in result.stdout and "symbolic link" in result.stdout


def test_size_limit_is_a_setting(controller: Controller, repo: GitRepo, batch: Any) -> None:
    """max_manifest_bytes lowers the limit: a 2 KiB file is refused by size alone."""
    repo.write("defs/d.json", DEFINITION)
    repo.write("jobs/good.json", GOOD)
    repo.write("jobs/padded.json", {**GOOD, "jobName": "padded", "tags": {"pad": "x" * 2000}})
    repo.commit("padded")
    controller.settings = controller.settings.model_copy(update={"max_manifest_bytes": 1024})
    result = controller.reconcile()
    assert [(e.path, e.message.split(";")[1].strip()) for e in result.errors] == [
        ("jobs/padded.json", "the limit is 1024")
    ]
    assert job_names(batch) == ["good"]


def test_too_many_manifests_refuses_the_revision_without_pruning(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Above max_manifests the whole revision is refused ('rejected'): nothing is
    submitted and nothing pruned, though the revision also removed a job."""
    from controller.demo import backend as demo_backend

    demo_backend.set_mode("hold")
    repo.write("defs/d.json", DEFINITION)
    repo.write("jobs/good.json", GOOD)
    repo.commit("one job")
    assert controller.reconcile().result == "ok"
    repo.remove("jobs/good.json")
    for index in range(5):
        repo.write(f"jobs/many-{index}.json", {**GOOD, "jobName": f"many-{index}"})
    repo.commit("many")
    controller.settings = controller.settings.model_copy(update={"max_manifests": 4})
    counter = WriteCounter(controller.api)
    result = controller.reconcile()
    assert result.result == "rejected"
    assert "has 6 manifest files; the limit is 4" in result.message
    assert counter.writes == []
    assert job_names(batch) == ["good"]


def test_the_daemon_survives_all_of_them_at_once(
    controller: Controller, repo: GitRepo, batch: Any, tmp_path: Path
) -> None:
    """One revision with every hostile file: the daemon's pass completes, the good job
    is submitted, /healthz keeps answering, and a later good commit is applied."""
    repo.write("defs/d.json", DEFINITION)
    repo.write("jobs/good.json", GOOD)
    for path, content, _ in HOSTILE.values():
        (repo.path / path).parent.mkdir(parents=True, exist_ok=True)
        (repo.path / path).write_bytes(content)
    os.symlink("/etc/hostname", repo.path / "jobs/abs.json")
    repo.commit("everything bad")
    settings = controller.settings.model_copy(update={"interval": 3600.0, "listen": "127.0.0.1:0"})
    daemon = Daemon(settings, controller.api, controller.ledger)
    daemon.start()
    try:
        wait_until("the daemon's first pass", lambda: daemon.passes >= 1, 20)
        assert daemon.health.last_result == "degraded"
        assert job_names(batch) == ["good"]
        repo.write("jobs/second.json", {**GOOD, "jobName": "second"})
        repo.commit("a good change")
        daemon.trigger()
        wait_until("the triggered pass", lambda: daemon.passes >= 2, 20)
        assert job_names(batch) == ["good", "second"]
        import urllib.request

        port = daemon.server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            assert reply.status == 200
    finally:
        daemon.stop()
