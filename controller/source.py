"""The git side: resolve the branch head and list the manifest blobs of a revision.

A local path is read in place (its branch, not its working tree: what is
applied is always a commit). Any other ``SRC`` is a git URL, mirrored into a
bare repository under ``workdir``; an ``ls-remote`` decides whether a fetch is
needed at all, so an unchanged remote costs one small round trip. Fetches
force-update the branch, so a force-push is just a new revision.

Blobs are listed with their SHA, which is what lets the reconciler skip
re-parsing files that did not change. Everything raises :class:`SourceError`
with a short machine ``reason`` (for metrics) and a message for people.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git

from controller.manifests import is_manifest_path

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://|^[^/\s]+@[^:\s]+:")


class SourceError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Snapshot:
    """One revision of the manifest tree."""

    revision: str
    author: str
    committed_at: float
    message: str
    # (repo-relative path, blob sha) of every candidate manifest file
    files: tuple[tuple[str, str], ...]
    repo: git.Repo

    def read(self, blob: str) -> bytes:
        return bytes(self.repo.odb.stream(bytes.fromhex(blob)).read())

    def contents(self) -> Iterator[tuple[str, bytes, str]]:
        for path, blob in self.files:
            yield path, self.read(blob), blob


def is_url(src: str) -> bool:
    return bool(_SCHEME.match(src))


class GitSource:
    def __init__(
        self,
        src: str,
        branch: str = "main",
        subdir: str = "",
        workdir: Path = Path(".batch-gitops/cache"),
        fetch_timeout: float = 60.0,
    ) -> None:
        if not src:
            raise SourceError("config", "no repository given (--repo or BATCH_GITOPS_REPO)")
        self.src = src
        self.branch = branch
        self.subdir = subdir.strip("/")
        self.fetch_timeout = fetch_timeout
        self.remote = is_url(src)
        if self.remote:
            name = hashlib.sha256(src.encode()).hexdigest()[:16]
            self.mirror = Path(workdir) / f"{name}.git"
        else:
            self.mirror = Path(src)

    def _repo(self) -> git.Repo:
        try:
            if self.remote and not self.mirror.exists():
                self.mirror.parent.mkdir(parents=True, exist_ok=True)
                repo = git.Repo.init(self.mirror, bare=True)
                repo.create_remote("origin", self.src)
                return repo
            return git.Repo(self.mirror)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise SourceError("not-a-repository", f"{self.src}: not a git repository") from exc

    def _remote_head(self, repo: git.Repo) -> str | None:
        """One ``ls-remote`` round trip: the branch head on the remote, None if absent."""
        try:
            out = repo.git.ls_remote(
                "origin", f"refs/heads/{self.branch}", kill_after_timeout=self.fetch_timeout
            )
        except git.GitCommandError as exc:
            raise SourceError("unreachable", f"{self.src}: {_git_message(exc)}") from exc
        for line in str(out).splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{self.branch}":
                return sha
        return None

    def update(self) -> str:
        """Bring the mirror up to date (if remote) and return the head revision."""
        repo = self._repo()
        if self.remote:
            head = self._remote_head(repo)
            if head is None:
                raise SourceError(
                    "branch-missing", f"{self.src}: branch {self.branch!r} does not exist"
                )
            try:
                local = repo.rev_parse(f"refs/heads/{self.branch}").hexsha
            except (git.BadName, ValueError):
                local = None
            if local != head:
                try:
                    repo.git.fetch(
                        "origin",
                        f"+refs/heads/{self.branch}:refs/heads/{self.branch}",
                        "--no-tags",
                        kill_after_timeout=self.fetch_timeout,
                    )
                except git.GitCommandError as exc:
                    raise SourceError("fetch-failed", f"{self.src}: {_git_message(exc)}") from exc
            return head
        try:
            return repo.commit(self.branch).hexsha
        except (git.BadName, ValueError) as exc:
            raise SourceError(
                "branch-missing", f"{self.src}: no branch or revision {self.branch!r}"
            ) from exc

    def snapshot(self, revision: str | None = None) -> Snapshot:
        revision = revision or self.update()
        repo = self._repo()
        try:
            commit = repo.commit(revision)
        except (git.BadName, ValueError) as exc:
            raise SourceError(
                "checkout-failed", f"revision {revision} is not in {self.src}"
            ) from exc
        tree = commit.tree
        if self.subdir:
            try:
                tree = tree / self.subdir
            except KeyError as exc:
                raise SourceError(
                    "path-missing", f"{self.subdir!r} does not exist in revision {revision[:12]}"
                ) from exc
            if tree.type != "tree":
                raise SourceError("path-missing", f"{self.subdir!r} is not a directory")
        files = tuple(
            (str(item.path), str(item.hexsha))
            for item in tree.traverse()
            if isinstance(item, git.Blob)
            and is_manifest_path(_relative(str(item.path), self.subdir))
            and item.mode != 0o120000  # symlinks are never followed
        )
        return Snapshot(
            revision=commit.hexsha,
            author=f"{commit.author.name} <{commit.author.email}>",
            committed_at=float(commit.committed_date),
            message=str(commit.message).strip().splitlines()[0] if commit.message else "",
            files=files,
            repo=repo,
        )


def _relative(path: str, subdir: str) -> str:
    return path[len(subdir) + 1 :] if subdir and path.startswith(subdir + "/") else path


def _git_message(exc: git.GitCommandError) -> str:
    stderr = str(exc.stderr or "").strip().replace("stderr: ", "").strip("'\n ")
    return stderr.splitlines()[-1] if stderr else f"git exited with {exc.status}"
