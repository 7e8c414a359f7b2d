"""The ownership tags the controller puts on every job and definition it creates.

Auditors and the controller's own safety checks rely on these exact keys: only
resources whose ``batch-gitops/managed-by`` equals our controller id are ever
cancelled, terminated or deregistered.
"""

from __future__ import annotations

import re

MANAGED_BY_TAG = "batch-gitops/managed-by"
MANIFEST_TAG = "batch-gitops/manifest"
REVISION_TAG = "batch-gitops/revision"
SPEC_HASH_TAG = "batch-gitops/spec-hash"
SUBMISSION_TAG = "batch-gitops/submission"
AUTHOR_TAG = "batch-gitops/author"

MAX_VALUE = 256


def ownership_tags(
    *,
    controller_id: str,
    manifest: str,
    revision: str,
    spec_hash: str,
    author: str = "",
    submission: str | None = None,
) -> dict[str, str]:
    tags = {
        MANAGED_BY_TAG: controller_id,
        MANIFEST_TAG: _fit(manifest),
        REVISION_TAG: revision,
        SPEC_HASH_TAG: spec_hash,
    }
    if author:
        tags[AUTHOR_TAG] = _fit(author)
    if submission:
        tags[SUBMISSION_TAG] = submission
    return tags


def is_managed(tags: dict[str, str] | None, controller_id: str) -> bool:
    return bool(tags) and (tags or {}).get(MANAGED_BY_TAG) == controller_id


# AWS tag values: letters, digits, spaces and _ . : / = + - @ only.
_NOT_ALLOWED = re.compile(r"[^\w\s.:/=+\-@]")


def _fit(value: str) -> str:
    """Make a value AWS accepts: allowed characters, at most 256 (keep the end of a path)."""
    value = _NOT_ALLOWED.sub("_", value.replace("<", "").replace(">", "")).strip()
    return value if len(value) <= MAX_VALUE else value[-MAX_VALUE:]
