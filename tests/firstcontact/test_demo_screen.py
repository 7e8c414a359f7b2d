"""The demo, tried again as a new user (issue 15, findings 1, 5, 6 and 7): `demo --once`
prints a table that fits 80 columns with whole job names and no log lines, and leaves
no temporary folder; the watching demo names invalid manifests under its table and in
its log once per revision, and its log file is plain text without a line per idle pass."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
JOB_NAMES = ("train-model-42", "train-model-experiment-42", "hyperparameter-sweep")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCH_GITOPS_"))}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {**env, "TMPDIR": str(tmp_path / "tmp"), "COLUMNS": "80"}


def _wait_for(process: subprocess.Popen[str], what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not done():
        assert process.poll() is None, f"demo exited ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"demo: {what} did not happen in 60s"
        time.sleep(0.3)


def test_demo_once_fits_80_columns_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """`demo --once` without --workdir: exit 0, every stdout line within 80 columns with
    the job names whole, no JSON log lines on stderr, and its temp folder removed."""
    result = subprocess.run(
        [sys.executable, "-m", "controller", "demo", "--once"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    table = lines[lines.index("Jobs") : -1]  # the last line is the summary with the URL
    assert max(len(line) for line in table) <= 80, result.stdout
    for name in JOB_NAMES:
        assert any(line.split()[:1] == [name] for line in table), name
    assert "{" not in result.stderr and "pass_id" not in result.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_watching_demo_names_invalid_manifests_once(tmp_path: Path) -> None:
    """A commit with two broken files: the demo's log has one `manifest_invalid` line per
    file and field while passes go on (seen on its /metrics), no colour codes and no repeated idle
    `pass` lines; the screen lists both files under the table; --workdir is kept."""
    workdir = tmp_path / "demo"
    out = (tmp_path / "stdout.txt").open("w")
    demo = subprocess.Popen(
        [sys.executable, "-m", "controller", "demo", "--workdir", str(workdir)],
        env=_env(tmp_path),
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = workdir / "controller.log"
    repo = workdir / "repo"
    try:
        _wait_for(demo, "the intro", lambda: "tail -f" in (tmp_path / "stdout.txt").read_text())
        intro = (tmp_path / "stdout.txt").read_text()
        metrics = re.search(r"Metrics: (\S+)", intro)
        assert metrics, intro
        (repo / "jobs" / "typo.json").write_text(
            json.dumps({"jobName": "typo", "jobQueu": "cpu-job-queue", "jobDefinition": "x"})
        )
        (repo / "jobs" / "cut.json").write_text('{"jobName": "cut",')
        commit = ["git", "-c", "user.name=Dee", "-c", "user.email=dee@example.com"]
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run([*commit, "commit", "-qm", "break two files"], cwd=repo, check=True)

        def degraded_passes() -> int:
            text = urllib.request.urlopen(metrics.group(1), timeout=5).read().decode()
            found = re.search(r'batch_gitops_passes_total\{result="degraded"\} (\S+)', text)
            return int(float(found.group(1))) if found else 0

        _wait_for(demo, "two passes over the broken commit", lambda: degraded_passes() >= 2)
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(timeout=30)
        finally:
            if demo.poll() is None:
                demo.kill()
            out.close()
    assert code == 0
    text = log.read_text()
    assert ANSI.search(text) is None  # a file a person tails: no colour codes
    invalid = [line for line in text.splitlines() if "manifest_invalid" in line]
    # Once per file and field (the typo is an unknown jobQueu and a missing jobQueue), not
    # once per pass.
    assert len(invalid) == 3, invalid
    assert any("jobs/typo.json" in line and "field=jobQueu " in line for line in invalid)
    assert any("jobs/typo.json" in line and "field=jobQueue " in line for line in invalid)
    assert any("jobs/cut.json" in line and "invalid JSON" in line for line in invalid)
    degraded_lines = [line for line in text.splitlines() if "result=degraded" in line]
    assert len(degraded_lines) == 1, degraded_lines  # the idle repeats are not logged
    screen = (tmp_path / "stdout.txt").read_text()
    assert "Invalid manifests at" in screen and "jobs/cut.json: invalid JSON" in screen
    assert "jobs/typo.json: jobQueu" in screen
    assert (repo / ".git").is_dir()  # --workdir is the user's: kept
