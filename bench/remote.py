"""A manifest repository published as a bare repository that ``git daemon`` serves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import corpus
from bench.git_server import GitServer


@dataclass
class Remote:
    work: Path  # where commits are made
    bare: Path  # what the server serves
    url: str  # through the counting proxy

    def push(self) -> None:
        corpus.git(self.work, "push", "-q", str(self.bare), "main")


def publish(server: GitServer, work: Path, name: str = "batch.git") -> Remote:
    bare = server.root / name
    corpus.git(server.root, "init", "-q", "--bare", "-b", "main", name)
    remote = Remote(work, bare, server.url(name))
    remote.push()
    return remote
