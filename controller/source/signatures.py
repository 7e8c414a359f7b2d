"""Is the revision to apply signed by a key we trust? (GPG and SSH commit signatures.)

git does the cryptography: ``git verify-commit`` with ``GNUPGHOME`` pointing at a
keyring that holds only the allowed GPG keys, and ``gpg.ssh.allowedSignersFile``
naming the allowed SSH keys. ``%G?`` tells the cases apart for the report, and an
optional list of fingerprints narrows the allowed signers further. Called by the
pass right after the source is read; an untrusted head is not applied at all.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# git's %G? letters: G good, U good but unknown validity, B bad, X/Y expired
# signature/key, R revoked key, E cannot be checked (e.g. missing key), N none.
_REASONS = {
    "N": "unsigned",
    "B": "bad-signature",
    "E": "unknown-key",
    "X": "expired-signature",
    "Y": "expired-key",
    "R": "revoked-key",
}


@dataclass(frozen=True)
class Verification:
    trusted: bool
    reason: str  # trusted | unsigned | bad-signature | unknown-key | key-not-allowed | ...
    fingerprint: str = ""
    signer: str = ""
    message: str = ""


def verify_revision(
    git_dir: Path,
    revision: str,
    *,
    gnupghome: Path | None = None,
    allowed_signers_file: Path | None = None,
    allowed_keys: list[str] | None = None,
    timeout: float = 30.0,
) -> Verification:
    """Check ``revision``'s signature; never raises for a bad or missing one."""
    env = dict(os.environ)
    if gnupghome is not None:
        env["GNUPGHOME"] = str(gnupghome)
    # An empty allowed-signers file rejects every SSH signature, rather than git
    # failing with "needs to be configured" or reading the user's own config.
    signers = str(allowed_signers_file) if allowed_signers_file else os.devnull
    base = ["git", "--git-dir", str(git_dir), "-c", f"gpg.ssh.allowedSignersFile={signers}"]
    short = revision[:12]
    try:
        shown = subprocess.run(
            [*base, "log", "-1", "--format=%G?%x1f%GF%x1f%GP%x1f%GS", revision, "--"],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout.strip()
        verified = subprocess.run(
            [*base, "verify-commit", revision],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return Verification(False, "error", message=f"revision {short} not checked (error): {exc}")
    letter, fingerprint, primary, signer = ([*shown.split("\x1f"), "", "", ""])[:4]
    if letter in _REASONS:
        reason = _REASONS[letter]
        return Verification(
            False, reason, fingerprint, signer, f"revision {short} is not trusted ({reason})"
        )
    if letter not in ("G", "U") or verified.returncode != 0:
        # For SSH, U means the key is not in the allowed signers file.
        return Verification(
            False,
            "key-not-allowed",
            fingerprint,
            signer,
            f"revision {short} is not trusted (key-not-allowed): signed by "
            f"{fingerprint or 'an unknown key'}, which is not an allowed signer",
        )
    if allowed_keys and not ({fingerprint, primary} & set(allowed_keys)):
        return Verification(
            False,
            "key-not-allowed",
            fingerprint,
            signer,
            f"revision {short} is not trusted (key-not-allowed): signed by {fingerprint}, "
            "not one of the allowed signing keys",
        )
    return Verification(True, "trusted", fingerprint, signer, "")
