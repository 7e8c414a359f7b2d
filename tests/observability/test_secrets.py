"""Credentials and webhook secrets never appear in logs, metrics, health answers, CLI output,
error messages or the ledger, whatever the controller does with them."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from controller.demo import backend as demo_backend
from controller.settings import Settings
from tests.conftest import GitRepo
from tests.observability.live import http_get, run_daemon
from tests.support.cli import run_cli
from tests.support.manifests import definition, job
from tests.support.ports import free_port
from tests.support.waiting import wait_until

GIT_SECRET = "s3cr3t-g1t-t0ken"
# Shaped like real AWS credentials (the redactor must not depend on a test-only marker).
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKQ"
AWS_KEY_ID = "AKIAZ7QX3EXAMPLEKEYQ"
WEBHOOK_SECRET = "whsec-3xampl3-w3bh00k-s3cr3t"
SECRETS = (GIT_SECRET, AWS_SECRET, AWS_KEY_ID, WEBHOOK_SECRET)


def secret_env(repo: str, moto: demo_backend.MotoBatch | None = None) -> dict[str, str]:
    env = {
        "BATCH_GITOPS_REPO": repo,
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "BATCH_GITOPS_LOG_FORMAT": "json",
    }
    # Every secret-like setting the controller has (the webhook secret, and any added later).
    for name in Settings.model_fields:
        if any(word in name for word in ("secret", "token", "password")) and not name.endswith(
            "_file"
        ):
            env[f"BATCH_GITOPS_{name.upper()}"] = WEBHOOK_SECRET
    # A GitHub token needs a repository to post statuses to (the URL's path is one part).
    env["BATCH_GITOPS_GITHUB_REPOSITORY"] = "example/batch"
    if moto is not None:
        env["AWS_ENDPOINT_URL_BATCH"] = moto.endpoint
    return env


def assert_no_secret(where: str, text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{where} leaks {leaked}:\n{text[:3000]}"


def test_daemon_with_credentials_in_url_and_env_leaks_nothing(
    moto: demo_backend.MotoBatch, tmp_path: Path
) -> None:
    """A daemon whose git URL carries a token (and whose env holds AWS keys and the webhook
    secret) fails to fetch, says so in its logs, /readyz and /metrics, and none of them
    contains a secret; the URL's host still shows, so the message stays useful."""
    url = f"https://gituser:{GIT_SECRET}@127.0.0.1:{free_port()}/batch.git"
    env = secret_env(url, moto)
    with run_daemon(url, tmp_path, env=env) as daemon:
        wait_until(
            "two failed fetches",
            lambda: (
                'batch_gitops_passes_total{result="source-error"} 2.0'
                in http_get(f"{daemon.url}/metrics")[1]
            ),
            30,
            0.2,
        )
        metrics_text = http_get(f"{daemon.url}/metrics")[1]
        status, readyz = http_get(f"{daemon.url}/readyz")
        healthz = http_get(f"{daemon.url}/healthz")[1]
    logs = daemon.log_path.read_text()
    assert status == 503 and "127.0.0.1" in readyz
    assert '"event": "pass"' in logs and '"result": "source-error"' in logs
    assert "127.0.0.1" in logs  # the message still says where it failed
    for where, text in (
        ("logs", logs),
        ("/metrics", metrics_text),
        ("/readyz", readyz),
        ("/healthz", healthz),
    ):
        assert_no_secret(where, text)


def test_cli_passes_and_ledger_leak_nothing(
    moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path
) -> None:
    """`plan` against a URL with a token prints a useful error without the token; `reconcile`
    with AWS keys and the webhook secret in the environment, an AWS error (a missing queue)
    and an invalid manifest prints, logs and records (ledger) no secret."""
    url = f"https://gituser:{GIT_SECRET}@127.0.0.1:{free_port()}/batch.git"
    state = tmp_path / "ledger.sqlite"
    base = {**os.environ, **secret_env(url, moto), "BATCH_GITOPS_STATE": str(state)}
    base["BATCH_GITOPS_WORKDIR"] = str(tmp_path / "cache")

    outputs: list[tuple[str, str]] = []
    for args in (("plan",), ("plan", "--output", "json"), ("reconcile", "--output", "json")):
        result = run_cli(*args, env=base)
        assert result.returncode == 1
        assert "127.0.0.1" in result.stdout + result.stderr
        outputs.append((f"{args} with a token in the URL", result.stdout + result.stderr))

    repo.write("defs/trainer.json", definition("trainer"))
    repo.write("jobs/fine.json", job("fine"))
    repo.commit("a good job first (a first pass checks every queue for lost ledgers)")
    local = {**base, "BATCH_GITOPS_REPO": str(repo.path)}
    first = run_cli("reconcile", env=local)
    assert first.returncode == 0, first.stdout + first.stderr
    outputs.append(("first reconcile", first.stdout + first.stderr))
    repo.write("jobs/lost.json", job("lost", "no-such-queue"))
    repo.write("jobs/broken.json", {"jobName": "broken"})
    repo.commit("a failing job and an invalid one")
    for args in (("reconcile",), ("reconcile", "--output", "json"), ("status", "--offline")):
        result = run_cli(*args, env=local)
        outputs.append((str(args), result.stdout + result.stderr))
    assert "no-such-queue" in outputs[-2][1]  # the AWS error is reported ...
    for where, text in outputs:
        assert_no_secret(where, text)  # ... and no credential with it
    with sqlite3.connect(state) as db:
        dump = "\n".join(db.iterdump())
    assert "no-such-queue" in dump
    assert_no_secret("ledger", dump)
