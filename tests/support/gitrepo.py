"""A real git repository in ``tmp_path`` with a tiny API for tests (the ``repo`` fixture)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support.paths import EXAMPLES


class GitRepo:
    """A real git repository with a tiny API for tests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Ada Author")
        self.git("config", "user.email", "ada@example.com")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.path, check=True, text=True, capture_output=True
        ).stdout.strip()

    def write(self, relpath: str, content: Any) -> None:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if not isinstance(content, str):
            content = json.dumps(content, indent=2)
        target.write_text(content)

    def remove(self, relpath: str) -> None:
        self.git("rm", "-q", "-r", relpath)

    def copy_examples(self, source: Path = EXAMPLES) -> None:
        for file in source.rglob("*"):
            if file.is_file():
                self.write(file.relative_to(source).as_posix(), file.read_text())

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def commit_as(self, author: str, message: str) -> str:
        """Commit everything as ``author`` (``Name``, mailed at name@example.com)."""
        self.git("add", "-A")
        self.git(
            "-c",
            f"user.name={author}",
            "-c",
            f"user.email={author.lower()}@example.com",
            "commit",
            "-q",
            "-m",
            message,
        )
        return self.git("rev-parse", "HEAD")
