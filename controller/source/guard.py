"""May this revision be applied at all? And which of its manifests does the policy allow?

Called by the pass right after ``source.snapshot()`` (a small hook in
:mod:`controller.engine.reconcile`): a head that is not signed by an allowed key, or
that holds more manifest files than ``max_manifests``, is refused as a whole —
nothing is applied and nothing is pruned (a truncated file list would look like
removals). Then the team policy of the revision (or of ``policy_from``) turns
every manifest that breaks it into an invalid one.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from controller import metrics
from controller.model.manifests import Limits, LoadResult
from controller.settings import Settings
from controller.source.policy_ref import gate_revision
from controller.source.repository import Snapshot, is_url
from controller.source.signatures import verify_revision

log = structlog.get_logger(__name__)


def limits(settings: Settings) -> Limits:
    return Limits(max_bytes=settings.max_manifest_bytes)


def refuse(settings: Settings, snapshot: Snapshot) -> tuple[str, str] | None:
    """``(result, message)`` when the revision must not be applied, else None."""
    if len(snapshot.files) > settings.max_manifests:
        message = (
            f"revision {snapshot.revision[:12]} has {len(snapshot.files)} manifest files; "
            f"the limit is {settings.max_manifests} (BATCH_GITOPS_MAX_MANIFESTS): nothing applied"
        )
        metrics.SOURCE_REJECTED.labels(reason="too-many-manifests").inc()
        log.error("source_rejected", reason="too-many-manifests", files=len(snapshot.files))
        return "rejected", message
    if settings.verify_signatures:
        verification = verify_revision(
            Path(snapshot.repo.git_dir),
            snapshot.revision,
            gnupghome=settings.gnupghome,
            allowed_signers_file=settings.allowed_signers_file,
            allowed_keys=settings.allowed_signing_keys,
        )
        metrics.SIGNATURE_CHECKS.labels(result=verification.reason).inc()
        if not verification.trusted:
            metrics.SOURCE_REJECTED.labels(reason="untrusted").inc()
            log.error(
                "revision_untrusted",
                reason=verification.reason,
                fingerprint=verification.fingerprint or None,
                signer=verification.signer or None,
            )
            return "untrusted", verification.message + ": nothing applied"
    return None


def apply_policy(settings: Settings, snapshot: Snapshot, loaded: LoadResult) -> LoadResult:
    gated = gate_revision(
        loaded,
        snapshot.repo,
        snapshot.revision,
        settings.policy_file,
        settings.policy_from,
        remote=is_url(settings.repo),
    )
    blocked = len(gated.invalid_paths - loaded.invalid_paths)
    metrics.POLICY_VIOLATIONS.set(blocked)
    if blocked:
        log.warning("policy_violations", manifests=blocked)
    return gated
