"""Secrets come from the environment or mounted files and never leave: not in logs,
/metrics, /readyz, webhook replies, pass results, nor `status` output.

Everything runs for real: settings from env vars, the daemon's HTTP server on
127.0.0.1, JSON logs rendered by the production structlog configuration, the
`status` command through click."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from controller.cli.main import main
from controller.service.daemon import Daemon
from tests.conftest import Controller, GitRepo
from tests.security.test_webhook import github_headers, post, sign, wait_for
from tests.support.capture import fetch, json_logs
from tests.support.controllers import make_settings
from tests.support.manifests import definition, job

WEBHOOK_SECRET = "whsec-Zq8sV3-never-in-output"
URL_TOKEN = "ghp-token-never-in-output"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The production log configuration, rendering JSON into a buffer."""
    yield from json_logs(monkeypatch)


def test_webhook_secret_from_env_never_appears(
    controller: Controller,
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: io.StringIO,
) -> None:
    """With the secret in BATCH_GITOPS_WEBHOOK_SECRET: a good push, a forged token that
    embeds the secret, and a bad signature are handled, and the secret is in no log
    line, no /metrics, /readyz or /healthz body, no webhook reply, and the settings'
    repr masks it."""
    repo.write("jobs/a.json", job("a", definition="d"))
    repo.commit("job")
    monkeypatch.setenv("BATCH_GITOPS_WEBHOOK_SECRET", WEBHOOK_SECRET)
    settings = make_settings(repo, tmp_path, interval=3600.0, listen="127.0.0.1:0")
    assert settings.state == controller.settings.state
    assert settings.webhook_secret is not None
    assert WEBHOOK_SECRET not in repr(settings) + str(settings) + settings.model_dump_json()
    daemon = Daemon(settings, controller.api, controller.ledger)
    daemon.start()
    try:
        wait_for(lambda: daemon.passes >= 1)
        base = f"http://127.0.0.1:{daemon.server.server_port}"
        body = b'{"ref": "refs/heads/main"}'
        good = github_headers(body)
        good["X-Hub-Signature-256"] = sign(body, WEBHOOK_SECRET)
        replies = [post(f"{base}/webhook", body, good)]
        wait_for(lambda: daemon.passes >= 2)
        forged = {
            "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Token": WEBHOOK_SECRET + "x",
            "X-Gitlab-Event-UUID": "u-1",
        }
        replies.append(post(f"{base}/webhook", body, forged))
        replies.append(post(f"{base}/webhook", body, github_headers(body)))
        assert [status for status, _ in replies] == [202, 401, 401]
        outputs = [json.dumps(r) for _, r in replies]
        outputs += [fetch(f"{base}{path}") for path in ("/metrics", "/readyz", "/healthz")]
    finally:
        daemon.stop()
    outputs.append(logs.getvalue())
    assert '"event": "webhook"' in logs.getvalue()
    for output in outputs:
        assert WEBHOOK_SECRET not in output


def test_credentials_in_the_repo_url_never_appear(
    controller: Controller, tmp_path: Path, logs: io.StringIO
) -> None:
    """A repo URL with a token that cannot be reached: the pass result, the health
    message (/readyz) and the log lines name the URL without the token."""
    settings = controller.settings.model_copy(
        update={
            "repo": f"http://ci-bot:{URL_TOKEN}@127.0.0.1:9/manifests.git",
            "interval": 3600.0,
            "listen": "127.0.0.1:0",
            "fetch_timeout": 5.0,
        }
    )
    daemon = Daemon(settings, controller.api, controller.ledger)
    daemon.start()
    try:
        wait_for(lambda: daemon.passes >= 1, timeout=20)
        readyz = fetch(f"http://127.0.0.1:{daemon.server.server_port}/readyz")
    finally:
        daemon.stop()
    assert daemon.health.last_result == "source-error"
    assert "127.0.0.1:9/manifests.git" in readyz
    for output in (readyz, logs.getvalue(), daemon.health.message):
        assert URL_TOKEN not in output


def test_status_and_reconcile_output_hold_no_credentials(
    controller: Controller, repo: GitRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`reconcile` and `status` (text and JSON) with AWS credentials and a webhook
    secret in the environment print neither."""
    repo.write("defs/d.json", definition("d"))
    repo.write("jobs/a.json", job("a", definition="d"))
    repo.commit("job")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("BATCH_GITOPS_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("BATCH_GITOPS_REPO", str(repo.path))
    monkeypatch.setenv("BATCH_GITOPS_STATE", str(tmp_path / "cli.sqlite"))
    monkeypatch.setenv("BATCH_GITOPS_LOG_FORMAT", "json")
    runner = CliRunner()
    outputs: list[Any] = []
    try:
        for args in (["reconcile", "-o", "json"], ["status"], ["status", "-o", "json"]):
            result = runner.invoke(main, args)
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
    finally:
        structlog.reset_defaults()
    assert '"a"' in outputs[2]
    for output in outputs:
        assert AWS_SECRET not in output and WEBHOOK_SECRET not in output
