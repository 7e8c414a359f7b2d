"""Forge tokens and webhook URLs never leave: not in logs, /metrics, /readyz, errors,
the ledger, nor the settings' repr — even when the forge echoes them back."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.service.daemon import Daemon
from controller.settings import Settings
from tests.conftest import Controller, GitRepo
from tests.service.conftest import DEFINITION, commit_as, forge_settings, job
from tests.support.capture import fetch, json_logs
from tests.support.forge_server import ForgeServer
from tests.support.waiting import wait_until

SLACK_PATH = "/hooks/T0SECRET/B0SECRET/xoxb-never-in-output"


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The production log configuration, rendering JSON into a buffer."""
    yield from json_logs(monkeypatch)


def test_tokens_and_webhook_urls_never_appear(
    controller: Controller,
    repo: GitRepo,
    forge: ForgeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: io.StringIO,
) -> None:
    """GitHub token from a file, GitLab token from the environment, the Slack URL from a
    file; the forge refuses once with a 401 that echoes the token: statuses and a
    notification still arrive, and no token or URL path is in the JSON logs, /metrics,
    /readyz, the ledger file or the settings' repr."""
    github_file = tmp_path / "github-token"
    github_file.write_text(forge.state.github_token + "\n")
    urls_file = tmp_path / "notify-urls"
    urls_file.write_text(f"{forge.url}{SLACK_PATH}\n")
    monkeypatch.setenv("BATCH_GITOPS_GITLAB_TOKEN", forge.state.gitlab_token)
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("job-a"))
    repo.write("jobs/broken.json", {"jobName": "broken"})
    commit_as(repo, "Alice", "a job and a broken one")
    values = forge_settings(
        controller,
        forge,
        github_token=None,
        github_token_file=github_file,
        notify_urls=None,
        notify_urls_file=urls_file,
    ).model_dump()
    del values["gitlab_token"]  # from the environment
    settings = Settings(**values)
    assert settings.gitlab_token is not None  # from the environment
    forge.state.echo_token_in_errors = True
    forge.state.fail_only = "/api/v3/"  # GitHub refuses, echoing its Authorization header
    forge.state.fail_next(401, times=1)
    daemon = Daemon(settings, controller.api, controller.ledger)
    daemon.start()
    try:
        wait_until("the first pass", lambda: daemon.passes >= 1, 15)
        wait_until("the webhook message", lambda: forge.state.hooks, 15)
        # A trigger while the first pass is still finishing is skipped: ask until it runs.
        wait_until("the second pass", lambda: daemon.trigger() or daemon.passes >= 2, 15)
        wait_until(
            "statuses after the refusal",
            lambda: len([r for r in forge.state.received if "/statuses/" in r.path]) >= 3,
            15,
        )
        base = f"http://127.0.0.1:{daemon.server.server_port}"
        exposed = [fetch(f"{base}/metrics"), fetch(f"{base}/readyz"), fetch(f"{base}/healthz")]
    finally:
        daemon.stop()
    refused = [r for r in forge.state.received if r.answered == 401]
    assert len(refused) == 1 and refused[0].path.startswith("/api/v3/")
    text = logs.getvalue()
    assert "notification_failed" in text and "Bad credentials" in text
    ledger_bytes = b"".join(
        path.read_bytes() for path in Path(settings.state).parent.glob("ledger.sqlite*")
    )
    exposed += [text, repr(settings), str(settings), settings.model_dump_json()]
    secrets = [forge.state.github_token, forge.state.gitlab_token, SLACK_PATH, "xoxb-never"]
    for secret in secrets:
        for place in exposed:
            assert secret not in place
        assert secret.encode() not in ledger_bytes
    metrics_text = exposed[0]
    assert 'batch_gitops_notifications_total{result="sent",sink="github"}' in metrics_text
    for line in text.splitlines():
        json.loads(line)  # every log line is one JSON object
