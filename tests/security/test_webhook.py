"""POST /webhook: only a correctly signed, never-seen push triggers a pass.

Most cases talk to the real daemon over HTTP on 127.0.0.1 (real scheduler, real
passes against moto and a real git repo) and count the passes it ran; the
remaining edge cases call the WSGI route directly with a recording callback."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from controller.service.daemon import Daemon
from controller.service.webhook import ReplayGuard, Webhook, load_secret
from tests.conftest import Controller, GitRepo
from tests.support.manifests import job
from tests.support.waiting import wait_until

SECRET = "whsec-7c1f0e9a-do-not-print"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(body: bytes, *, delivery: str | None = None, event: str = "push") -> dict:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body),
        "Content-Type": "application/json",
    }


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def sample(provider: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "batch_gitops_webhook_requests_total", {"provider": provider, "result": result}
    )
    return value or 0.0


@pytest.fixture
def daemon(controller: Controller, repo: GitRepo, tmp_path: Path) -> Iterator[Daemon]:
    repo.write("jobs/a.json", job("a", definition="d"))
    repo.commit("one job")
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    settings = controller.settings.model_copy(
        update={"interval": 3600.0, "listen": "127.0.0.1:0", "webhook_secret_file": secret_file}
    )
    running = Daemon(settings, controller.api, controller.ledger)
    running.start()
    wait_for(lambda: running.passes >= 1)
    yield running
    running.stop()


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait (polling every 20 ms, at most ``timeout`` s) until ``condition()`` holds."""
    wait_until("the daemon's passes", condition, timeout, 0.02)


def url(daemon: Daemon, path: str = "/webhook") -> str:
    return f"http://127.0.0.1:{daemon.server.server_port}{path}"


def test_signed_github_push_triggers_one_pass(daemon: Daemon) -> None:
    """A push signed with the secret is accepted (202) and the daemon runs a pass at
    once, although the next scheduled pass is an hour away."""
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    before = daemon.passes
    status, reply = post(url(daemon), body, github_headers(body))
    assert (status, reply["result"]) == (202, "accepted")
    wait_for(lambda: daemon.passes == before + 1)


def test_bad_missing_and_replayed_signatures_get_401_and_no_pass(daemon: Daemon) -> None:
    """Wrong secret, no signature, a tampered body and a replayed delivery are 401,
    counted in batch_gitops_webhook_requests_total, and never run a pass."""
    body = b'{"ref": "refs/heads/main"}'
    unauthorized, replays = sample("github", "unauthorized"), sample("github", "replay")
    before = daemon.passes
    wrong = {**github_headers(body), "X-Hub-Signature-256": sign(body, "guess")}
    unsigned = {k: v for k, v in github_headers(body).items() if k != "X-Hub-Signature-256"}
    tampered = github_headers(body)
    assert post(url(daemon), body, wrong)[0] == 401
    assert post(url(daemon), body, unsigned)[0] == 401
    assert post(url(daemon), body + b" ", tampered)[0] == 401
    good = github_headers(body)
    assert post(url(daemon), body, good)[0] == 202
    wait_for(lambda: daemon.passes == before + 1)
    status, reply = post(url(daemon), body, good)  # the same delivery again
    assert (status, reply["result"]) == (401, "replay")
    time.sleep(0.5)  # give a wrongly triggered pass time to show up
    assert daemon.passes == before + 1
    assert sample("github", "unauthorized") == unauthorized + 3
    assert sample("github", "replay") == replays + 1


def test_gitlab_token_and_replay(daemon: Daemon) -> None:
    """GitLab: the right X-Gitlab-Token triggers a pass; a wrong one and a replayed
    X-Gitlab-Event-UUID are 401."""
    body = b'{"object_kind": "push"}'
    before = daemon.passes
    headers = {
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Token": SECRET,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
    }
    assert post(url(daemon), body, {**headers, "X-Gitlab-Token": "nope"})[0] == 401
    assert post(url(daemon), body, headers)[0] == 202
    wait_for(lambda: daemon.passes == before + 1)
    assert post(url(daemon), body, headers) == (
        401,
        {"result": "replay", "detail": "delivery already seen"},
    )


def test_oversized_body_is_refused_before_reading(daemon: Daemon) -> None:
    """A body above webhook_max_bytes is 413 and triggers nothing, answered from the
    Content-Length alone: the client sends headers only, so a server that tried to read
    the body would hang here until the timeout instead of answering."""
    claimed = daemon.settings.webhook_max_bytes + 1
    headers = github_headers(b"x" * claimed)
    connection = http.client.HTTPConnection("127.0.0.1", daemon.server.server_port, timeout=10)
    try:
        connection.putrequest("POST", "/webhook")
        for name, value in {**headers, "Content-Length": str(claimed)}.items():
            connection.putheader(name, value)
        connection.endheaders()  # no body follows
        reply = connection.getresponse()
        status, body = reply.status, json.loads(reply.read())
    finally:
        connection.close()
    assert (status, body["result"]) == (413, "too-large")


def test_no_secret_means_no_webhook(controller: Controller, repo: GitRepo) -> None:
    """Without a configured secret the route does not exist (404): an open webhook
    is never served by accident."""
    repo.commit("empty")
    settings = controller.settings.model_copy(update={"interval": 3600.0, "listen": "127.0.0.1:0"})
    running = Daemon(settings, controller.api, controller.ledger)
    running.start()
    try:
        body = b"{}"
        status, _ = post(url(running), body, github_headers(body))
        assert status == 404
    finally:
        running.stop()


def call(hook: Webhook, body: bytes, headers: dict[str, str], method: str = "POST") -> str:
    environ = {
        "REQUEST_METHOD": method,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
    }
    statuses: list[str] = []
    hook(environ, lambda status, _headers: statuses.append(status))
    return statuses[0]


def test_edge_cases_never_trigger() -> None:
    """GET, a ping, a non-push event, an unknown sender and a missing delivery id
    never call on_push; a signed push does, exactly once."""
    pushes: list[int] = []
    hook = Webhook(SecretStr(SECRET), lambda: pushes.append(1))
    body = b"{}"
    assert call(hook, body, github_headers(body), method="GET").startswith("405")
    assert call(hook, body, github_headers(body, event="ping")).startswith("200")
    assert call(hook, body, github_headers(body, event="issues")).startswith("202")
    assert call(hook, body, {"X-Other": "1"}).startswith("401")
    no_id = {k: v for k, v in github_headers(body).items() if k != "X-GitHub-Delivery"}
    assert call(hook, body, no_id).startswith("401")
    assert pushes == []
    assert call(hook, body, github_headers(body)).startswith("202")
    assert pushes == [1]


def test_replay_guard_is_bounded() -> None:
    """The replay memory keeps at most ``capacity`` ids (oldest forgotten first)."""
    guard = ReplayGuard(capacity=3)
    assert all(guard.first_time(str(i)) for i in range(5))
    assert not guard.first_time("4")
    assert guard.first_time("0")  # forgotten: memory stays bounded


def test_secret_file_wins_and_is_stripped(tmp_path: Path) -> None:
    """The mounted secret file wins over the env value; its trailing newline is not
    part of the secret; an empty file is an error naming the file."""
    file = tmp_path / "s"
    file.write_text("from-file\n")
    loaded = load_secret(SecretStr("from-env"), file)
    assert loaded is not None and loaded.get_secret_value() == "from-file"
    file.write_text("\n")
    with pytest.raises(ValueError, match=str(file)):
        load_secret(None, file)
