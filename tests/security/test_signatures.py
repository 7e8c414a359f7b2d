"""Signed revisions only: real keys generated here (gpg in a temporary GNUPGHOME,
ssh-keygen for SSH signing), real signed commits, real passes against moto.

An unsigned or wrongly signed head is not applied — no submit and no prune — and
is reported in the pass result, a metric and a log line."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from prometheus_client import REGISTRY

from controller.demo import backend as demo_backend
from controller.source.signatures import verify_revision
from tests.conftest import Controller, GitRepo, WriteCounter
from tests.support.aws import job_names
from tests.support.manifests import definition, job

JOB = job("signed-job", definition="d")
DEFINITION = definition("d")


def need(tool: str) -> None:
    """Fail (never skip) when ``tool`` is missing: .ci/run installs gnupg and openssh-client."""
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing; .ci/run installs it (apt: gnupg, openssh-client)")


class GpgHome:
    """A throwaway GnuPG home (short path: gpg-agent's socket must fit)."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="gpg", dir="/tmp"))
        self.path.chmod(0o700)
        self.env = {**os.environ, "GNUPGHOME": str(self.path)}

    def run(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            ["gpg", "--batch", "--quiet", *args],
            env=self.env,
            input=stdin,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    def generate(self, uid: str) -> str:
        self.run("--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
        for line in self.run("--list-keys", "--with-colons", uid).splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise AssertionError("no fingerprint")

    def close(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env=self.env, capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)


@pytest.fixture
def gpg() -> Iterator[dict[str, Any]]:
    """A signer keyring with two keys, and a verifier keyring that trusts only 'ada'."""
    need("gpg")
    signer, verifier = GpgHome(), GpgHome()
    ada = signer.generate("Ada <ada@example.com>")
    mallory = signer.generate("Mallory <mallory@example.com>")
    verifier.run("--import", stdin=signer.run("--armor", "--export", ada))
    yield {"signer": signer, "verifier": verifier.path, "ada": ada, "mallory": mallory}
    signer.close()
    verifier.close()


def commit_signed(repo: GitRepo, env: dict[str, str], *config: str, message: str) -> str:
    subprocess.run(["git", "add", "-A"], cwd=repo.path, check=True)
    subprocess.run(
        ["git", *config, "commit", "-q", "--allow-empty", "-S", "-m", message],
        cwd=repo.path,
        env=env,
        check=True,
        capture_output=True,
    )
    return repo.git("rev-parse", "HEAD")


def sample(result: str) -> float:
    value = REGISTRY.get_sample_value("batch_gitops_signature_checks_total", {"result": result})
    return value or 0.0


def test_gpg_signed_by_allowed_key_is_applied(
    controller: Controller, repo: GitRepo, batch: Any, gpg: dict[str, Any]
) -> None:
    """A head signed by the key in the verifier keyring is applied; the check is counted."""
    repo.write("defs/d.json", DEFINITION)
    repo.write("jobs/j.json", JOB)
    commit_signed(repo, gpg["signer"].env, "-c", f"user.signingkey={gpg['ada']}", message="ok")
    trusted = sample("trusted")
    settings = controller.settings.model_copy(
        update={"verify_signatures": True, "gnupghome": gpg["verifier"]}
    )
    controller.settings = settings
    result = controller.reconcile()
    assert result.result == "ok", result.message
    assert job_names(batch) == ["signed-job"]
    assert sample("trusted") == trusted + 1


@pytest.mark.parametrize("case", ["unsigned", "unknown-gpg-key", "fingerprint-not-allowed"])
def test_untrusted_head_is_not_applied_nor_pruned(
    controller: Controller,
    repo: GitRepo,
    batch: Any,
    gpg: dict[str, Any],
    case: str,
) -> None:
    """After a trusted revision is applied (job running), an untrusted head that
    removes the job and adds another changes nothing on AWS: no submit, no cancel.
    The pass says 'untrusted' with the reason, the metric counts it and a log line
    names it."""
    demo_backend.set_mode("hold")
    repo.write("defs/d.json", DEFINITION)
    repo.write("jobs/j.json", JOB)
    ada = ("-c", f"user.signingkey={gpg['ada']}")
    commit_signed(repo, gpg["signer"].env, *ada, message="trusted")
    allowed = [gpg["ada"]] if case != "fingerprint-not-allowed" else ["0" * 40]
    controller.settings = controller.settings.model_copy(
        update={"verify_signatures": True, "gnupghome": gpg["verifier"]}
    )
    if case != "fingerprint-not-allowed":
        assert controller.reconcile().result == "ok"
    controller.settings = controller.settings.model_copy(update={"allowed_signing_keys": allowed})
    repo.remove("jobs/j.json")
    repo.write("jobs/other.json", {**JOB, "jobName": "sneaky"})
    if case == "unsigned":
        repo.commit("unsigned")
        reason = "unsigned"
    elif case == "unknown-gpg-key":
        mallory = ("-c", f"user.signingkey={gpg['mallory']}")
        commit_signed(repo, gpg["signer"].env, *mallory, message="mallory")
        reason = "unknown-key"
    else:
        commit_signed(repo, gpg["signer"].env, *ada, message="ada, but not allowed")
        reason = "key-not-allowed"
    before = sample(reason)
    counter = WriteCounter(controller.api)
    with structlog.testing.capture_logs() as logs:
        result = controller.reconcile()
    assert result.result == "untrusted"
    assert reason in result.message and "nothing applied" in result.message
    assert counter.writes == []
    assert "sneaky" not in job_names(batch)
    assert sample(reason) == before + 1
    assert [e["reason"] for e in logs if e["event"] == "revision_untrusted"] == [reason]


@pytest.fixture
def ssh_keys(tmp_path: Path) -> dict[str, Path]:
    need("ssh-keygen")
    keys = {}
    for name in ("ada", "eve"):
        key = tmp_path / f"ssh-{name}"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
            check=True,
        )
        keys[name] = key
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"ada@example.com {(tmp_path / 'ssh-ada.pub').read_text()}")
    keys["allowed"] = allowed
    return keys


@pytest.mark.parametrize(("signer", "expected"), [("ada", "ok"), ("eve", "untrusted")])
def test_ssh_signatures_against_allowed_signers(
    controller: Controller,
    repo: GitRepo,
    batch: Any,
    ssh_keys: dict[str, Path],
    signer: str,
    expected: str,
) -> None:
    """With gpg.format=ssh, a head signed by a key in the allowed-signers file is
    applied; one signed by another key is not (key-not-allowed)."""
    repo.write("defs/d.json", DEFINITION)
    repo.write("jobs/j.json", JOB)
    config = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={ssh_keys[signer]}.pub")
    commit_signed(repo, dict(os.environ), *config, message=f"signed by {signer}")
    controller.settings = controller.settings.model_copy(
        update={"verify_signatures": True, "allowed_signers_file": ssh_keys["allowed"]}
    )
    result = controller.reconcile()
    assert result.result == expected, result.message
    assert job_names(batch) == (["signed-job"] if expected == "ok" else [])
    if expected != "ok":
        assert "(key-not-allowed)" in result.message


def test_ssh_signature_without_allowed_signers_is_untrusted(
    repo: GitRepo, ssh_keys: dict[str, Path]
) -> None:
    """No allowed-signers file configured means no SSH signer is allowed (never the
    user's own git config)."""
    config = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={ssh_keys['ada']}.pub")
    sha = commit_signed(repo, dict(os.environ), *config, message="ssh")
    verdict = verify_revision(repo.path / ".git", sha)
    assert not verdict.trusted and verdict.fingerprint.startswith("SHA256:")
