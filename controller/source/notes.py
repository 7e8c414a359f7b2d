"""Git notes: the audit trail written into the repository auditors already read.

When ``BATCH_GITOPS_GIT_NOTES=true`` (and the controller's git credentials may
push), every pass that acted appends a note to the commit it applied, under
``refs/notes/<git_notes_ref>`` (default ``batch-gitops``): one line per action
with its result and AWS id. ``git log --notes=batch-gitops`` or
``git notes --ref=batch-gitops show <sha>`` then answers "what did this commit
cause?" without the ledger.

For a remote source the note is written in the controller's bare mirror and
pushed; a push raced by another writer is merged (``cat_sort_uniq``: both
notes kept) and retried once. For a local path the note goes straight into
that repository. A note that cannot be written or pushed is logged and
counted, never fails the pass: the ledger stays the source of truth.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from controller import metrics
from controller.logs import redact_text

log = structlog.get_logger(__name__)
GIT_TIMEOUT = 30.0


class NoteError(Exception):
    """A git command for notes failed; the message is redacted."""


def format_note(pass_id: str, controller_id: str, results: Sequence[Any]) -> str:
    """One header line, then one line per action: verb, target, manifest, result, AWS id."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [f"batch-gitops ({controller_id}) pass {pass_id} at {at}:"]
    for outcome in results:
        action = outcome.action
        target = f"{action.queue}/{action.name}" if action.queue else action.name
        aws_id = outcome.aws_id or action.aws_id or "-"
        message = f" ({outcome.message})" if outcome.message else ""
        lines.append(
            f"  {action.action:<10} {action.kind:<14} {target} [{action.manifest}] "
            f"-> {outcome.result} {aws_id}{message}"
        )
    return "\n".join(lines)


class NoteWriter:
    """Appends notes in ``repo_dir`` and, when ``push`` is set, pushes them to ``origin``."""

    def __init__(self, repo_dir: Path, *, ref: str, push: bool, identity: str) -> None:
        self.repo_dir = repo_dir
        self.ref = f"refs/notes/{ref}"
        self.remote_copy = f"refs/notes/{ref}-remote"
        self.push = push
        self.identity = identity

    def _git(self, *args: str) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            done = subprocess.run(
                [
                    "git",
                    "-c",
                    f"user.name={self.identity}",
                    "-c",
                    f"user.email={self.identity}@batch-gitops.invalid",
                    *args,
                ],
                cwd=self.repo_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise NoteError(f"git {args[0]} took longer than {GIT_TIMEOUT:g}s") from exc
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise NoteError(redact_text(lines[-1] if lines else f"git {args[0]} failed"))
        return done.stdout

    def _has(self, ref: str) -> bool:
        try:
            self._git("rev-parse", "--verify", "--quiet", ref)
            return True
        except NoteError:
            return False

    def _catch_up(self) -> None:
        """Merge the remote's notes into ours first, so our push is a fast-forward."""
        try:
            self._git("fetch", "--no-tags", "origin", f"+{self.ref}:{self.remote_copy}")
        except NoteError as exc:
            if "couldn't find remote ref" in str(exc):
                return  # nobody has pushed notes yet
            raise
        if not self._has(self.ref):
            self._git("update-ref", self.ref, self.remote_copy)
        else:
            self._git(
                "notes", f"--ref={self.ref}", "merge", "-s", "cat_sort_uniq", self.remote_copy
            )

    def write(self, revision: str, text: str) -> None:
        if self.push:
            self._catch_up()
        self._git("notes", f"--ref={self.ref}", "append", "-m", text, revision)
        if not self.push:
            return
        try:
            self._git("push", "--no-verify", "origin", f"{self.ref}:{self.ref}")
        except NoteError:
            # Raced by another writer: merge theirs and try once more.
            self._catch_up()
            self._git("push", "--no-verify", "origin", f"{self.ref}:{self.ref}")


def note_pass(
    *,
    repo_dir: Path,
    remote: bool,
    ref: str,
    controller_id: str,
    revision: str,
    pass_id: str,
    results: Sequence[Any],
) -> bool:
    """Write (and push) the note of one pass. Returns True on success; never raises."""
    if not results or not revision:
        return False
    writer = NoteWriter(repo_dir, ref=ref, push=remote, identity=controller_id)
    try:
        writer.write(revision, format_note(pass_id, controller_id, results))
    except (NoteError, OSError) as exc:
        metrics.GIT_NOTES.labels(result="failed").inc()
        log.warning("git_note_failed", revision=revision[:12], ref=ref, error=str(exc))
        return False
    metrics.GIT_NOTES.labels(result="pushed" if remote else "written").inc()
    log.info("git_note_written", revision=revision[:12], ref=ref, actions=len(results))
    return True
