"""Smart HTTP (``git http-backend`` on 127.0.0.1): credentials come from git's own
configuration (an ``http.extraHeader`` in the environment, never in the URL), and a
hung or failing HTTP server is survived like any other broken remote."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import GitRepo
from tests.git_pressure.servers import BareRemote, GitHttp
from tests.git_pressure.test_remote_breaks import assert_blind_pass, seed
from tests.reliability.conftest import NUMBERS
from tests.support.manifests import job

TOKEN = "s3cr3t-bearer-token"


@pytest.fixture
def git_http(remote: BareRemote) -> Iterator[GitHttp]:
    server = GitHttp(remote.base, TOKEN)
    yield server
    server.close()


def use_header(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    """git's own config through the environment, as a Kubernetes Secret would provide it."""
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", f"Authorization: Bearer {token}")


def test_credentials_from_git_config_and_an_http_server_that_breaks(
    watch: Any,
    repo: GitRepo,
    remote: BareRemote,
    git_http: GitHttp,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Wrong token -> 'unreachable' at once (no prompt); right token -> applied; server
    answering 503 -> 'unreachable'; server hanging -> 'timeout' after fetch_timeout with
    git-remote-http killed; healthy again -> the revision pushed meanwhile is applied."""
    first = seed(repo, remote, "a")
    use_header(monkeypatch, "wrong")
    watched = watch(git_http.url(), fetch_timeout=1.5)
    started = time.monotonic()
    assert_blind_pass(watched, "unreachable", "")
    assert time.monotonic() - started < 15  # refused at once: no prompt waited for

    use_header(monkeypatch, TOKEN)
    outcome = watched.run()
    assert outcome.result == "ok" and outcome.revision == first, outcome.message
    assert sorted(r.action.action for r in outcome.results) == ["register", "submit"]
    watched.writes()  # forget this pass's calls (attempts, retries included)

    repo.write("jobs/b.json", job("b"))
    second = repo.commit("add b")
    remote.push()
    git_http.mode = "down"
    assert_blind_pass(watched, "unreachable", first)
    git_http.mode = "hang"
    started = time.monotonic()
    assert_blind_pass(watched, "timeout", first)
    took = time.monotonic() - started
    assert took < 15  # ended by fetch_timeout, not by a hang
    NUMBERS.append(
        "test_credentials_from_git_config_and_an_http_server_that_breaks: hung HTTP remote, "
        f"pass ended after {took:.2f}s with fetch_timeout=1.5s; writes while broken=0"
    )

    git_http.mode = "serve"
    outcome = watched.run()
    assert outcome.result == "ok" and outcome.revision == second, outcome.message
    assert watched.writes() == ["SubmitJob"]
    assert TOKEN not in capsys.readouterr().err
