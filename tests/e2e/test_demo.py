"""The README's demo command converges: `batch-gitops demo --once` exits 0."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import run_cli, start_cli
from tests.support.waiting import wait_until


def test_demo_once_submits_every_example_job(tmp_path: Path) -> None:
    """A fresh process: embedded moto, seeded repo, every example job submitted,
    and the second pass changes nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCH_GITOPS_"))}
    result = run_cli("demo", "--once", "--workdir", str(tmp_path), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 of 8 jobs submitted; second pass made 0 changes" in result.stdout
    assert (tmp_path / "repo" / ".git").is_dir() and (tmp_path / "ledger.sqlite").exists()


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _wait_for(
    demo: subprocess.Popen[str], what: str, condition: Callable[[], bool], timeout: float
) -> None:
    """Wait for ``condition`` while the demo still runs (its exit fails the test at once)."""

    def running_and_done() -> bool:
        assert demo.poll() is None, f"demo exited ({demo.returncode}) before {what}"
        return condition()

    wait_until(f"demo: {what}", running_and_done, timeout, 0.5)


def test_watching_demo_acts_on_a_commit_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """The README's demo command as a user runs it: it says where to commit, keeps the
    controller's log out of the live table (in a file it names), submits a job the user
    commits into the printed repository, and exits 0 on Ctrl-C (SIGINT)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCH_GITOPS_"))}
    out = (tmp_path / "stdout.txt").open("w")
    err = (tmp_path / "stderr.txt").open("w")
    demo = start_cli("demo", "--workdir", str(tmp_path / "demo"), env=env, stdout=out, stderr=err)
    log = tmp_path / "demo" / "controller.log"
    repo = tmp_path / "demo" / "repo"

    def logged(fragment: str) -> list[str]:
        text = ANSI.sub("", log.read_text()) if log.exists() else ""
        return [line for line in text.splitlines() if fragment in line]

    try:
        _wait_for(
            demo,
            "the intro naming the repository and the log",
            lambda: "tail -f" in (tmp_path / "stdout.txt").read_text(),
            90,
        )
        intro = (tmp_path / "stdout.txt").read_text()
        assert f"cd {repo} && git rm" in intro and f"tail -f {log}" in intro  # whole, unwrapped
        assert len([line for line in logged("action=submit") if "result=ok" in line]) == 8

        (repo / "jobs" / "extra.json").write_text(
            json.dumps(
                {
                    "jobName": "extra",
                    "jobQueue": "compute-queue",
                    "jobDefinition": "parameter-sweep",
                }
            )
        )
        commit = {"GIT_AUTHOR_NAME": "Dee Mo", "GIT_AUTHOR_EMAIL": "dee@example.com"}
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(
            ["git", "commit", "-qm", "one more job"], cwd=repo, check=True, env={**env, **commit}
        )
        _wait_for(
            demo,
            "a submit of the committed job",
            lambda: any("manifest=jobs/extra.json" in line for line in logged("action=submit")),
            30,
        )
        (line,) = [x for x in logged("action=submit") if "manifest=jobs/extra.json" in x]
        assert "result=ok" in line and "Dee Mo" in line
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(timeout=30)
        finally:
            if demo.poll() is None:
                demo.kill()
            out.close()
            err.close()
    assert code == 0
    assert "stopped" in (tmp_path / "stdout.txt").read_text()
    # Nothing from the controller's log on the terminal: the live table keeps it.
    assert "pass_id" not in (tmp_path / "stderr.txt").read_text()
