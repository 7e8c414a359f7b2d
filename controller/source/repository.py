"""The git side: resolve the branch head and list the manifest blobs of a revision.

A local path is read in place (its branch, not its working tree: what is
applied is always a commit). Any other ``SRC`` is a git URL, mirrored into a
bare repository under ``workdir``; an ``ls-remote`` decides whether a fetch is
needed at all, so an unchanged remote costs one small round trip. Fetches
force-update the branch, so a force-push is just a new revision.

Under pressure (called by :func:`controller.engine.reconcile.run_pass` once a pass):

* every network command runs in its own process group and is killed, with
  every helper it spawned (``git-remote-http``, ``ssh``), after
  ``fetch_timeout`` seconds: a server that accepts and never answers costs
  one timeout, not a stuck daemon;
* git never prompts (``GIT_TERMINAL_PROMPT=0``): credentials come from git's
  own mechanisms (credential helpers, ``~/.netrc``, ssh keys) or fail fast;
* a mirror that is not a repository any more, or that the remote answers but
  a fetch into it fails (a stale ``*.lock`` left by a killed fetch, lost or
  corrupt objects), is cloned again into a fresh directory, once per attempt,
  and replaced only when that clone succeeded;
* credentials in a URL (``https://user:token@host/...``) never appear in an
  error message: every message is built from :attr:`GitSource.display`.

The mirror keeps the last fetched revision whatever the remote does; the
caller decides what to do with a failure (a pass plans nothing). Blobs are
listed with their SHA, which lets the reconciler skip re-parsing unchanged
files. Everything raises :class:`SourceError` with a short machine ``reason``
(a bounded metric label) and a message for people.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import git
import structlog
from git.repo.fun import is_git_dir

from controller.logs import redact_text
from controller.model.manifests import is_manifest_path
from controller.settings import Settings

log = structlog.get_logger(__name__)

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://|^[^/\s]+@[^:\s]+:")
# Reading blobs is local (no network), but never unbounded.
READ_TIMEOUT = 120.0
# Most paths are the same from one revision to the next; the check builds a PurePath.
_manifest_path = functools.lru_cache(maxsize=1 << 16)(is_manifest_path)


class SourceError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _GitFailed(Exception):
    """A git command exited non-zero; ``message`` is its last stderr line, redacted."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
    # blob sha -> size in bytes, as listed with the tree (empty if not listed)
    sizes: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    # manifest-named symlinks: never followed, reported as invalid files
    links: tuple[str, ...] = ()

    def read(self, blob: str) -> bytes:
        return bytes(self.repo.odb.stream(bytes.fromhex(blob)).read())

    def read_many(self, blobs: list[str]) -> dict[str, bytes]:
        """Many blobs from one ``git cat-file --batch`` process.

        :meth:`read` is a pipe round trip to GitPython's long-lived cat-file per blob
        (two, with the size check): 10,000 files cost seconds; one batch costs tens of ms.
        """
        if not blobs:
            return {}
        proc = subprocess.run(
            ["git", f"--git-dir={self.repo.git_dir}", "cat-file", "--batch"],
            input=("\n".join(blobs) + "\n").encode(),
            capture_output=True,
            timeout=READ_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            raise ValueError(f"git cat-file failed: {proc.stderr.decode(errors='replace')}")
        out, position, contents = proc.stdout, 0, {}
        for blob in blobs:
            end = out.index(b"\n", position)
            header = out[position:end].split()
            if len(header) != 3 or header[1] != b"blob":
                raise ValueError(f"blob {blob} cannot be read: {out[position:end]!r}")
            start = end + 1
            contents[blob] = out[start : start + int(header[2])]
            position = start + int(header[2]) + 1
        return contents

    def contents(self) -> Iterator[tuple[str, bytes, str]]:
        for path, blob in self.files:
            yield path, self.read(blob), blob

    def last_commits(
        self, paths: Iterable[str], timeout: float = READ_TIMEOUT
    ) -> dict[str, tuple[str, str, float]]:
        """Per path, the newest commit up to this revision that added, changed or
        deleted it: ``(sha, "Name <email>", commit time)`` — the commit that asked.

        One ``git log --name-only`` walk, stopped as soon as every path is found; a
        path it does not reach in ``timeout`` seconds is simply absent (callers fall
        back to the head commit).
        """
        wanted = set(paths)
        if not wanted:
            return {}
        command = [
            "git", "-c", "core.quotePath=false", "--literal-pathspecs",
            f"--git-dir={self.repo.git_dir}", "log", "--no-renames", "--name-only",
            "--format=%x01%H%x02%an <%ae>%x02%ct", self.revision, "--", *sorted(wanted),
        ]  # fmt: skip
        found: dict[str, tuple[str, str, float]] = {}
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            commit: tuple[str, str, float] | None = None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("\x01"):
                    sha, author, when = line[1:].split("\x02")
                    commit = (sha, author, float(when))
                elif commit is not None and line in wanted and line not in found:
                    found[line] = commit
                    if len(found) == len(wanted):
                        break
        finally:
            timer.cancel()
            proc.kill()
            proc.wait()
        return found


def is_url(src: str) -> bool:
    return bool(_SCHEME.match(src))


def redact_url(src: str) -> str:
    """``src`` without the user-info part of a URL (``https://***@host/repo.git``)."""
    parts = urllib.parse.urlsplit(src)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))
    return src


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
        self.display = redact_url(src)
        self.branch = branch
        self.subdir = subdir.strip("/")
        self.fetch_timeout = fetch_timeout
        self.remote = is_url(src)
        if self.remote:
            # The URL (with any credentials) is hashed, never used as a path.
            name = hashlib.sha256(src.encode()).hexdigest()[:16]
            self.mirror = Path(workdir) / f"{name}.git"
        else:
            self.mirror = Path(src)
        self._cached: git.Repo | None = None

    # --- the mirror ---
    def _repo(self) -> git.Repo:
        if self._cached is not None and is_git_dir(self._cached.git_dir):
            return self._cached
        if not self.remote:
            try:
                self._cached = git.Repo(self.mirror)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
                raise SourceError(
                    "not-a-repository", f"{self.display}: not a git repository"
                ) from exc
            return self._cached
        if self.mirror.exists():
            try:
                repo = git.Repo(self.mirror)
                repo.remotes.origin  # noqa: B018 - raises if the mirror lost its remote
                self._cached = repo
                return repo
            except (git.InvalidGitRepositoryError, git.NoSuchPathError, AttributeError) as exc:
                self._discard_mirror(f"not a usable mirror ({type(exc).__name__})")
        return self._init_mirror()

    def _init_mirror(self) -> git.Repo:
        self.mirror.parent.mkdir(parents=True, exist_ok=True)
        repo = git.Repo.init(self.mirror, bare=True)
        repo.create_remote("origin", self.src)
        self._cached = repo
        return repo

    def _discard_mirror(self, why: str) -> None:
        """Set a broken mirror aside (then delete it) so the next fetch starts clean."""
        log.warning("source_mirror_discarded", repo=self.display, mirror=str(self.mirror), why=why)
        if self._cached is not None:
            self._cached.close()
            self._cached = None
        if self.mirror.exists():
            aside = self.mirror.with_name(f"{self.mirror.name}.broken-{time.time_ns()}")
            self.mirror.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)

    # --- git commands with a hard deadline ---
    def _git(self, *args: str, cwd: Path | None = None) -> str:
        """Run ``git args`` in the mirror; kill its whole process group on timeout."""
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        proc = subprocess.Popen(
            ["git", *args],
            cwd=cwd or self.mirror,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            start_new_session=True,  # its own process group: helpers die with it
        )
        try:
            out, err = proc.communicate(timeout=self.fetch_timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise SourceError(
                "timeout",
                f"{self.display}: git {args[0]} got no answer within {self.fetch_timeout:g}s "
                "(BATCH_GITOPS_FETCH_TIMEOUT); keeping the last fetched revision",
            ) from None
        if proc.returncode != 0:
            raise _GitFailed(self._clean(err) or f"git {args[0]} exited with {proc.returncode}")
        return out

    def _clean(self, stderr: str) -> str:
        """The last meaningful stderr line, with the URL's credentials removed."""
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        # git's own verdict is the "fatal:" line; hints and progress come around it
        fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
        text = (fatal or lines or [""])[0 if fatal else -1]
        if self.src != self.display:
            text = text.replace(self.src, self.display)
            userinfo = urllib.parse.urlsplit(self.src).netloc.rpartition("@")[0]
            if userinfo:
                text = text.replace(userinfo, "***")
        return redact_text(text)

    def _remote_head(self) -> str | None:
        """One ``ls-remote`` round trip: the branch head on the remote, None if absent."""
        try:
            out = self._ls_remote()
        except _GitFailed as exc:
            raise SourceError(
                "unreachable",
                f"{self.display}: {exc.message}; keeping the last fetched revision",
            ) from exc
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{self.branch}":
                return sha
        return None

    def _remote_branches(self) -> list[str] | None:
        """Every branch on the remote (one more ``ls-remote``), None if it cannot be listed."""
        try:
            out = self._git("ls-remote", "--heads", "origin")
        except (_GitFailed, SourceError):
            return None
        return [line.partition("\trefs/heads/")[2] for line in out.splitlines() if "\t" in line]

    def _ls_remote(self) -> str:
        try:
            return self._git("ls-remote", "origin", f"refs/heads/{self.branch}")
        except _GitFailed:
            try:
                self._git("config", "--get", "remote.origin.url")
            except _GitFailed:  # our mirror lost its remote, not the server its repo
                self._discard_mirror("the mirror has no remote 'origin'")
                self._init_mirror()
                return self._git("ls-remote", "origin", f"refs/heads/{self.branch}")
            raise

    def _fetch(self, cwd: Path | None = None) -> None:
        self._git(
            "fetch",
            "--no-tags",
            "--no-write-fetch-head",
            "origin",
            f"+refs/heads/{self.branch}:refs/heads/{self.branch}",
            cwd=cwd,
        )

    def _reclone(self, why: str) -> None:
        """Fetch into a fresh mirror beside the old one; replace the old one only on success,
        so a remote that fails again keeps the last fetched revision on disk."""
        fresh = self.mirror.with_name(f"{self.mirror.name}.fresh-{time.time_ns()}")
        try:
            repo = git.Repo.init(fresh, bare=True)
            repo.create_remote("origin", self.src)
            repo.close()
            self._fetch(cwd=fresh)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
        self._discard_mirror(why)
        fresh.rename(self.mirror)

    def _local_head(self, repo: git.Repo) -> str | None:
        try:
            return repo.rev_parse(f"refs/heads/{self.branch}").hexsha
        except Exception:  # missing ref, or a damaged one: either way, fetch
            return None

    def update(self) -> str:
        """Bring the mirror up to date (if remote) and return the head revision."""
        repo = self._repo()
        if not self.remote:
            try:
                return repo.commit(self.branch).hexsha
            except (git.BadName, ValueError) as exc:
                branches = [head.name for head in repo.heads]
                raise SourceError(
                    "branch-missing",
                    f"{self.src}: no branch or revision {self.branch!r}; " + _branch_hint(branches),
                ) from exc
        head = self._remote_head()
        if head is None:
            raise SourceError(
                "branch-missing",
                f"{self.display}: branch {self.branch!r} does not exist on the remote "
                f"(deleted or renamed?); keeping the last fetched revision; "
                + _branch_hint(self._remote_branches()),
            )
        if self._local_head(repo) == head:
            return head
        try:
            self._fetch()
        except _GitFailed as first:
            # The remote just answered ls-remote, so the fault is most likely ours:
            # a stale lock of a killed fetch, or lost objects. Clone again, once.
            try:
                self._reclone(f"fetch failed: {first.message}")
            except _GitFailed as exc:
                raise SourceError("fetch-failed", f"{self.display}: {exc.message}") from exc
        return head

    def snapshot(self, revision: str | None = None) -> Snapshot:
        revision = revision or self.update()
        try:
            return self._snapshot(revision)
        except SourceError:
            raise
        except Exception as exc:
            if not self.remote:
                raise SourceError(
                    "checkout-failed",
                    f"{self.display}: cannot read revision {revision[:12]}: {exc}",
                ) from exc
            # Unreadable objects in our own mirror: clone again and read once more.
            try:
                self._reclone(f"cannot read revision {revision[:12]}: {type(exc).__name__}")
                return self._snapshot(revision)
            except _GitFailed as again:
                raise SourceError("fetch-failed", f"{self.display}: {again.message}") from again
            except SourceError:
                raise
            except Exception as again:
                raise SourceError(
                    "checkout-failed",
                    f"{self.display}: cannot read revision {revision[:12]} even after a fresh "
                    f"clone: {type(again).__name__}",
                ) from again

    def _snapshot(self, revision: str) -> Snapshot:
        repo = self._repo()
        try:
            commit = repo.commit(revision)
        except (git.BadName, ValueError) as exc:
            if self.remote:
                raise  # the mirror lost it: the caller re-clones
            raise SourceError(
                "checkout-failed", f"revision {revision} is not in {self.display}"
            ) from exc
        tree = commit.tree
        if self.subdir:
            try:
                tree = tree / self.subdir
            except KeyError as exc:
                raise SourceError(
                    "path-missing",
                    f"{self.subdir!r} does not exist in revision {revision[:12]} "
                    "(check --path / BATCH_GITOPS_PATH)",
                ) from exc
            if tree.type != "tree":
                raise SourceError("path-missing", f"{self.subdir!r} is not a directory")
        files, sizes, links = self._list_blobs(commit.hexsha)
        return Snapshot(
            revision=commit.hexsha,
            author=f"{commit.author.name} <{commit.author.email}>",
            committed_at=float(commit.committed_date),
            message=str(commit.message).strip().splitlines()[0] if commit.message else "",
            files=files,
            repo=repo,
            sizes=sizes,
            links=links,
        )

    def _list_blobs(
        self, revision: str
    ) -> tuple[tuple[tuple[str, str], ...], dict[str, int], tuple[str, ...]]:
        """Every manifest blob of the revision with its size, from one ``git ls-tree``.

        One C process: walking the tree object by object through GitPython costs
        ~0.1 ms a file, a second per 10,000. ``-l`` reads every blob's size, so a blob
        missing from the mirror fails here, where a re-clone can still help, not
        halfway through parsing.
        """
        tree = f"{revision}:{self.subdir}" if self.subdir else revision
        listing = self._git("ls-tree", "-r", "-l", "-z", "--full-tree", tree)
        prefix = f"{self.subdir}/" if self.subdir else ""
        files: list[tuple[str, str]] = []
        sizes: dict[str, int] = {}
        links: list[str] = []
        for record in listing.split("\0"):
            meta, _, name = record.partition("\t")
            if not name:
                continue
            mode, kind, blob, size = meta.split()
            path = prefix + name
            if kind != "blob" or not _manifest_path(name):
                continue  # submodules and other files are not manifests
            if mode == "120000":
                links.append(path)  # never followed: it could point outside the directory
                continue
            if not size.isdigit():
                raise ValueError(f"blob {blob} of {path} is missing from {self.display}")
            files.append((path, blob))
            sizes[blob] = int(size)
        return tuple(files), sizes, tuple(links)


def repository_name(src: str, subdir: str = "") -> str:
    """What a ledger is bound to: the repository's name (the last part of its URL or path,
    without ``.git``) and the manifest sub-directory. A URL moving to another host or
    from https to ssh keeps it; a second repository has another."""
    if is_url(src):
        path = urllib.parse.urlsplit(src).path if "://" in src else src.rpartition(":")[2]
    else:
        path = str(Path(src).resolve())
    name = path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or path
    return f"{name}/{subdir.strip('/')}" if subdir.strip("/") else name


def _branch_hint(branches: list[str] | None) -> str:
    """What to do about a missing branch: the branches that exist and the flag to pass."""
    if branches is None:
        return "set --branch (BATCH_GITOPS_BRANCH) to the branch to apply"
    if not branches:
        return "the repository has no branch yet: commit the manifests first"
    names = sorted(branches, key=lambda name: (name not in ("main", "master"), name))
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"its branches: {shown}; pass --branch {names[0]} (or set BATCH_GITOPS_BRANCH)"


def prepare_repository(directory: Path, branch: str) -> tuple[str, str]:
    """Make ``directory`` a git repository whose branch is ``branch`` (for ``init``).

    Returns ``("created", branch)``, or ``("existing", <current branch>)`` when it already
    is, or lies inside, a git work tree (never nested, never switched).
    """
    try:
        repo = git.Repo(directory, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        git.Repo.init(directory, initial_branch=branch).close()
        return "created", branch
    try:
        current = repo.active_branch.name  # also for a branch with no commit yet
    except TypeError:  # detached HEAD
        current = ""
    repo.close()
    return "existing", current


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a helper left the group and holds our pipes
        proc.kill()


def make_source(settings: Settings) -> GitSource:
    return GitSource(
        settings.repo, settings.branch, settings.path, settings.workdir, settings.fetch_timeout
    )
