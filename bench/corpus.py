"""Git repositories full of job manifests, written the way teams write them.

Each job is one ``submit-job --cli-input-json`` request file; 100 files per
directory, like a repository organised by team or pipeline.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.endpoint import DEFINITION, QUEUE

PER_DIRECTORY = 100


def job_request(name: str) -> dict[str, object]:
    return {
        "jobName": name,
        "jobQueue": QUEUE,
        "jobDefinition": DEFINITION,
        "containerOverrides": {
            "command": ["python", "train.py", "--shard", name],
            "environment": [{"name": "SHARD", "value": name}],
        },
    }


def job_name(index: int, prefix: str = "job") -> str:
    return f"{prefix}-{index:05d}"


def job_path(index: int, prefix: str = "job") -> str:
    return f"{prefix}/{index // PER_DIRECTORY:03d}/{job_name(index, prefix)}.json"


def git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=path, check=True, text=True, capture_output=True
    ).stdout.strip()


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench Author")
    git(path, "config", "user.email", "bench@example.com")
    git(path, "config", "commit.gpgsign", "false")
    return path


def write_jobs(path: Path, indexes: range, prefix: str = "job") -> list[str]:
    """Write one manifest per index; returns their repo-relative paths."""
    written = []
    for index in indexes:
        relpath = job_path(index, prefix)
        target = path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(job_request(job_name(index, prefix)), indent=2) + "\n")
        written.append(relpath)
    return written


def commit(path: Path, message: str) -> str:
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", message)
    return git(path, "rev-parse", "HEAD")
