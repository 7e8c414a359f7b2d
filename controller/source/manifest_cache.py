"""Parsed manifests of a snapshot, cached by (path, blob SHA) across passes.

Called by the pass (:mod:`controller.engine.reconcile`) right after the source is
read: an unchanged file is never parsed twice, new files are read from git in
batches of at most :data:`READ_BATCH_BYTES`, and the gated desired state of the
last revision is remembered so an unchanged revision costs no parsing at all.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.model.desired import DesiredState
from controller.model.manifests import (
    SYMLINK_MESSAGE,
    Limits,
    LoadResult,
    Manifest,
    ManifestError,
    load_manifest,
)
from controller.source.repository import Snapshot


class ManifestCache:
    """Parsed manifests by (path, blob SHA): an unchanged file is never parsed twice."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Manifest | list[ManifestError]] = {}
        # The last revision's snapshot and gated desired state (before schedules, which
        # depend on the clock): an unchanged revision skips listing the tree, reading the
        # blobs, the policy and build_desired — most of a pass's CPU with 10,000 files.
        self._memo: tuple[str, Snapshot, DesiredState] | None = None

    def remembered(self, revision: str, policy_from: str) -> tuple[Snapshot, DesiredState] | None:
        """The snapshot and desired state of ``revision`` if it is the one built last."""
        if self._memo is None:
            return None
        key, snapshot, desired = self._memo
        if key != _memo_key(snapshot, revision, policy_from):
            return None
        return snapshot, desired

    def remember(self, snapshot: Snapshot, policy_from: str, desired: DesiredState) -> None:
        """Keep ``desired`` (treated as read-only from now on) for the next pass."""
        key = _memo_key(snapshot, snapshot.revision, policy_from)
        self._memo = None if key is None else (key, snapshot, desired)

    def load(self, snapshot: Snapshot, limits: Limits | None = None) -> LoadResult:
        result = LoadResult()
        fresh: dict[tuple[str, str], Manifest | list[ManifestError]] = {}
        unparsed: list[tuple[str, str]] = []
        for path, blob in snapshot.files:
            entry = self._entries.get((path, blob))
            if entry is None:
                entry = _oversized(snapshot, path, blob, limits)
            if entry is None:
                unparsed.append((path, blob))
            else:
                fresh[(path, blob)] = entry
        # New files are read in batches (one git process each), parsed as each batch arrives.
        for batch in _read_batches(unparsed, snapshot.sizes, limits):
            contents = snapshot.read_many([blob for _, blob in batch])
            for path, blob in batch:
                fresh[(path, blob)] = load_manifest(path, contents[blob], blob, limits)
        for path, blob in snapshot.files:
            entry = fresh[(path, blob)]
            if isinstance(entry, Manifest):
                result.manifests.append(entry)
            else:
                result.errors.extend(entry)
                result.invalid_paths.add(path)
        for path in snapshot.links:
            result.errors.append(ManifestError(path, "", SYMLINK_MESSAGE))
            result.invalid_paths.add(path)
        self._entries = fresh  # forget files that are gone: memory stays bounded
        return result


def _memo_key(snapshot: Snapshot, revision: str, policy_from: str) -> str | None:
    """What the gated desired state depends on: the revision, and the policy ref if any."""
    if not policy_from:
        return revision
    try:  # a trusted policy ref moves on its own; an unresolvable one is never reused
        return f"{revision}:{snapshot.repo.commit(policy_from).hexsha}"
    except Exception:
        return None


def _oversized(
    snapshot: Snapshot, path: str, blob: str, limits: Limits | None
) -> list[ManifestError] | None:
    """Refuse a too-large blob from its size in the object database, before reading it."""
    size = snapshot.sizes.get(blob)
    if size is None:  # not listed with the tree: ask the object database
        size = int(snapshot.repo.odb.info(bytes.fromhex(blob)).size)
    limit = (limits or Limits()).max_bytes
    if size > limit:
        return [ManifestError(path, "", f"file is {size} bytes; the limit is {limit}")]
    return None


# Bytes of blobs held in memory at once while a revision's new files are parsed.
READ_BATCH_BYTES = 16 * 1024 * 1024


def _read_batches(
    files: list[tuple[str, str]], sizes: dict[str, int], limits: Limits | None
) -> Iterator[list[tuple[str, str]]]:
    """Split files into read batches of at most READ_BATCH_BYTES (an unlisted size
    counts as the per-file limit, which _oversized has already enforced)."""
    limit = (limits or Limits()).max_bytes
    batch: list[tuple[str, str]] = []
    total = 0
    for path, blob in files:
        size = sizes.get(blob, limit)
        if batch and total + size > READ_BATCH_BYTES:
            yield batch
            batch, total = [], 0
        batch.append((path, blob))
        total += size
    if batch:
        yield batch
