"""The README's demo command converges: `batch-gitops demo --once` exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_once_submits_every_example_job(tmp_path: Path) -> None:
    """A fresh process: embedded moto, seeded repo, every example job submitted,
    and the second pass changes nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCH_GITOPS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "controller", "demo", "--once", "--workdir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 of 8 jobs submitted; second pass made 0 changes" in result.stdout
    assert (tmp_path / "repo" / ".git").is_dir() and (tmp_path / "ledger.sqlite").exists()
