"""The remote breaks and comes back: the controller keeps what is live, says so on
/readyz, /metrics and in logs, never prunes or resubmits while blind, and applies
the next revision as soon as the remote answers again.

Real remotes only: a bare repository over ``file://`` and behind ``git daemon`` on
127.0.0.1, a TCP port that accepts and never answers, an HTTP server that asks
for credentials; real passes against the moto server.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from controller.demo import backend as demo_backend
from controller.logs import configure
from controller.source.repository import GitSource, SourceError
from tests.conftest import GitRepo
from tests.git_pressure.conftest import DEFINITION, Watched, job, jobs_by_name
from tests.git_pressure.servers import BareRemote, Blackhole, GitDaemon, free_port
from tests.reliability.conftest import NUMBERS

ERRORS = "batch_gitops_source_fetch_errors_total"


def seed(repo: GitRepo, remote: BareRemote, *names: str) -> str:
    repo.write("defs/trainer.json", DEFINITION)
    for name in names:
        repo.write(f"jobs/{name}.json", job(name))
    sha = repo.commit("seed " + " ".join(names))
    remote.push()
    return sha


def assert_blind_pass(watched: Watched, reason: str, last_good: str) -> None:
    """A pass without its source: no write at all, health and metrics say why."""
    before = watched.metric(ERRORS, reason=reason)
    outcome = watched.run()
    assert outcome.result == "source-error", outcome.message
    assert watched.writes() == []
    assert watched.metric(ERRORS, reason=reason) == before + 1
    assert watched.metric("batch_gitops_source_ready") == 0
    status, body = watched.readyz()
    assert status == 503 and body["ready"] is False
    assert body["last_result"] == "source-error"
    assert body["revision"] == last_good  # still the last good one
    assert body["message"] == outcome.message


def test_file_remote_moved_away_and_back(
    watch: Any, repo: GitRepo, remote: BareRemote, batch: Any
) -> None:
    """file://: the remote vanishes (moved away) -> reason 'unreachable', nothing cancelled
    although the jobs are active; back again -> the next revision is applied."""
    demo_backend.set_mode("queued")  # active jobs: a wrong prune would be visible
    first = seed(repo, remote, "a", "b")
    watched = watch(remote.file_url)
    first_pass = watched.run()
    assert first_pass.result == "ok"
    assert sorted(r.action.action for r in first_pass.results) == ["register", "submit", "submit"]
    watched.writes()  # forget the first pass's calls (attempts, retries included)
    assert watched.readyz()[0] == 200

    aside = remote.move_away()
    for _ in range(2):
        assert_blind_pass(watched, "unreachable", first)

    remote.move_back(aside)
    repo.remove("jobs/b.json")
    repo.write("jobs/c.json", job("c"))
    second = repo.commit("drop b, add c")
    remote.push()
    outcome = watched.run()
    assert outcome.result == "ok" and outcome.revision == second
    assert sorted(watched.writes()) == ["CancelJob", "SubmitJob"]
    status, body = watched.readyz()
    assert status == 200 and body["revision"] == second
    assert watched.metric("batch_gitops_source_ready") == 1
    assert {name: len(runs) for name, runs in jobs_by_name(batch).items()} == {
        "a": 1,
        "b": 1,
        "c": 1,
    }


def test_git_daemon_stopped_then_restarted(
    watch: Any, repo: GitRepo, remote: BareRemote, git_daemon: GitDaemon, batch: Any
) -> None:
    """git://: the daemon dies -> 'unreachable' passes with no writes; commits pushed
    meanwhile are applied on the first pass after it comes back on the same port."""
    first = seed(repo, remote, "a")
    watched = watch(git_daemon.url())
    assert watched.run().result == "ok"
    watched.writes()

    git_daemon.stop()
    assert_blind_pass(watched, "unreachable", first)
    repo.write("jobs/b.json", job("b"))
    repo.commit("add b")
    repo.write("jobs/c.json", job("c"))
    latest = repo.commit("add c")
    remote.push()
    assert_blind_pass(watched, "unreachable", first)

    git_daemon.start()
    outcome = watched.run()
    assert outcome.result == "ok" and outcome.revision == latest
    assert watched.writes() == ["SubmitJob", "SubmitJob"]
    assert sorted(jobs_by_name(batch)) == ["a", "b", "c"]


def test_branch_deleted_then_pushed_again(
    watch: Any, repo: GitRepo, remote: BareRemote, git_daemon: GitDaemon
) -> None:
    """A deleted branch is 'branch-missing', never 'empty repository': the active jobs
    are not cancelled; the same branch pushed back changes nothing."""
    demo_backend.set_mode("queued")
    first = seed(repo, remote, "a", "b", "c")
    watched = watch(git_daemon.url())
    assert watched.run().result == "ok"
    watched.writes()

    remote.delete_branch()
    assert_blind_pass(watched, "branch-missing", first)
    assert "branch 'main' does not exist" in watched.readyz()[1]["message"]

    remote.push()
    outcome = watched.run()
    assert outcome.result == "ok" and outcome.revision == first
    assert watched.writes() == []


def test_server_that_never_answers_times_out_then_recovers(
    watch: Any, repo: GitRepo, remote: BareRemote, git_daemon: GitDaemon, batch: Any
) -> None:
    """A port that accepts and never answers costs one fetch_timeout per pass (the git
    process group is killed), reason 'timeout'; once it relays again, the pass applies."""
    hole = Blackhole(git_daemon.port)
    try:
        hole.mode = "forward"
        first = seed(repo, remote, "a")
        watched = watch(hole.url(), fetch_timeout=1.0)
        assert watched.run().result == "ok"
        watched.writes()

        hole.mode = "hang"
        repo.write("jobs/b.json", job("b"))
        second = repo.commit("add b")
        remote.push()
        started = time.monotonic()
        assert_blind_pass(watched, "timeout", first)
        took = time.monotonic() - started
        NUMBERS.append(
            "test_server_that_never_answers_times_out_then_recovers: hung remote, "
            f"pass ended after {took:.2f}s with fetch_timeout=1s; writes while hung=0"
        )
        assert 1.0 <= took < 15.0  # ended by the timeout, not by a hang (a loaded machine is slow)
        assert "no answer within 1s" in watched.readyz()[1]["message"]

        hole.mode = "forward"
        outcome = watched.run()
        assert outcome.result == "ok" and outcome.revision == second
        assert watched.writes() == ["SubmitJob"]
        assert sorted(jobs_by_name(batch)) == ["a", "b"]
    finally:
        hole.close()


class _AskForPassword(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_credentials_never_in_errors_or_logs(
    watch: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token in the URL is replaced by *** in the error, /readyz and the JSON logs; a
    server asking for a password fails the pass at once instead of prompting."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AskForPassword)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    previous = structlog.get_config()
    try:
        configure("json")  # writes to the captured stderr of this test only
        secret = "ghp_s3cr3tT0ken"
        for url in (
            f"http://alice:{secret}@127.0.0.1:{free_port()}/batch.git",  # nothing listens
            f"http://{secret}@127.0.0.1:{server.server_port}/batch.git",  # asks again: 401
        ):
            watched = watch(url, fetch_timeout=20)
            started = time.monotonic()
            outcome = watched.run()
            assert time.monotonic() - started < 30  # no prompt waited for (it would hang)
            assert outcome.result == "source-error"
            assert "***@127.0.0.1" in outcome.message and secret not in outcome.message
            assert secret not in json.dumps(watched.readyz()[1])
        logged = capsys.readouterr().err
        assert '"event": "source_unavailable"' in logged
        assert secret not in logged
        assert not any(secret in p.name for p in (tmp_path / "cache").iterdir())
    finally:
        structlog.configure(**previous)
        server.shutdown()


@pytest.mark.parametrize("damage", ["stale-lock", "objects-lost", "not-a-repository"])
def test_damaged_mirror_is_cloned_again(
    damage: str, watch: Any, repo: GitRepo, remote: BareRemote, git_daemon: GitDaemon
) -> None:
    """A mirror left locked by a killed fetch, stripped of its objects, or overwritten is
    set aside and cloned again: the next revision is applied, nothing is resubmitted."""
    seed(repo, remote, "a")
    watched = watch(git_daemon.url())
    assert watched.run().result == "ok"
    watched.writes()
    mirror = watched.daemon.source.mirror
    repo.write("jobs/b.json", job("b"))
    second = repo.commit("add b")
    remote.push()
    if damage == "stale-lock":
        (mirror / "refs" / "heads" / "main.lock").write_text("")
    elif damage == "objects-lost":
        for pack in (mirror / "objects").rglob("*"):
            if pack.is_file():
                pack.unlink()
    else:
        for item in mirror.iterdir():
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()
        (mirror / "HEAD").write_text("garbage\n")
    outcome = watched.run()
    assert outcome.result == "ok" and outcome.revision == second, outcome.message
    assert watched.writes() == ["SubmitJob"]


def test_failed_reclone_keeps_the_old_mirror(
    watch: Any, repo: GitRepo, remote: BareRemote, git_daemon: GitDaemon
) -> None:
    """The remote answers ls-remote, then drops every connection: the fetch into the locked
    mirror and the fresh clone both fail ('fetch-failed'), the old mirror with the last
    good revision stays on disk, and the next pass on a healthy remote applies."""
    hole = Blackhole(git_daemon.port)
    try:
        hole.mode = "forward"
        first = seed(repo, remote, "a")
        watched = watch(hole.url())
        assert watched.run().result == "ok"
        watched.writes()
        mirror = watched.daemon.source.mirror
        (mirror / "refs" / "heads" / "main.lock").write_text("")  # a killed fetch's lock
        repo.write("jobs/b.json", job("b"))
        second = repo.commit("add b")
        remote.push()

        hole.mode = "forward-once"  # ls-remote gets through, the fetches do not
        assert_blind_pass(watched, "fetch-failed", first)
        assert (mirror / "refs" / "heads" / "main").read_text().strip() == first
        assert not list(mirror.parent.glob("*.fresh-*"))  # the failed clone is cleaned up

        hole.mode = "forward"
        outcome = watched.run()
        assert outcome.result == "ok" and outcome.revision == second, outcome.message
        assert watched.writes() == ["SubmitJob"]
    finally:
        hole.close()


def test_missing_objects_of_an_unchanged_head_are_fetched_again(
    repo: GitRepo, remote: BareRemote, tmp_path: Path
) -> None:
    """The head did not move but the mirror lost its objects: snapshot() re-clones
    instead of failing every pass until the next commit."""
    first = seed(repo, remote, "a")
    source = GitSource(remote.file_url, workdir=tmp_path / "cache", fetch_timeout=10)
    assert source.snapshot().revision == first
    for item in (source.mirror / "objects").rglob("*"):
        if item.is_file():
            item.unlink()
    snapshot = source.snapshot()
    assert snapshot.revision == first
    assert [path for path, _ in snapshot.files] == ["defs/trainer.json", "jobs/a.json"]


def test_unreachable_error_names_the_url_and_what_was_kept(tmp_path: Path) -> None:
    """The message a user sees names the (redacted) URL and says the last revision is kept."""
    source = GitSource(
        f"git://127.0.0.1:{free_port()}/batch.git", workdir=tmp_path / "c", fetch_timeout=5
    )
    with pytest.raises(SourceError) as caught:
        source.snapshot()
    assert caught.value.reason == "unreachable"
    assert "git://127.0.0.1:" in str(caught.value)
    assert "keeping the last fetched revision" in str(caught.value)


def test_local_repository_moved_away_and_back(repo: GitRepo, tmp_path: Path) -> None:
    """A local path (read in place, no mirror) that vanishes is 'not-a-repository' on the
    next snapshot, not a stale cached read; back in place, it is read again."""
    repo.write("jobs/a.json", job("a"))
    first = repo.commit("a")
    source = GitSource(str(repo.path))
    assert source.snapshot().revision == first
    aside = repo.path.rename(tmp_path / "aside")
    with pytest.raises(SourceError) as caught:
        source.snapshot()
    assert caught.value.reason == "not-a-repository"
    aside.rename(repo.path)
    assert source.snapshot().revision == first
