"""Commit statuses follow the jobs each commit caused, through the daemon, against a
stand-in GitHub (Enterprise paths) and GitLab on 127.0.0.1 that checks every request
against the documented REST shapes."""

from __future__ import annotations

from typing import Any

import pytest

from controller import metrics
from controller.demo import backend as demo_backend
from controller.service.daemon import Daemon
from tests.conftest import Controller, GitRepo
from tests.service.conftest import (
    DEFINITION,
    DaemonFactory,
    commit_as,
    forge_settings,
    job,
    settle,
)
from tests.support.forge_server import ForgeServer


def sample(sink: str, result: str) -> float:
    return metrics.NOTIFICATIONS.labels(sink=sink, result=result)._value.get()


def job_id(controller: Controller, name: str) -> str:
    run = controller.ledger.current_jobs()[("test-queue", name)]
    assert run.job_id
    return run.job_id


def states(posted: list[dict[str, Any]]) -> list[str]:
    return [p["state"] for p in posted]


def test_a_failed_job_ends_failure_naming_it_and_a_good_one_success(
    controller: Controller, repo: GitRepo, forge: ForgeServer, make_daemon: DaemonFactory
) -> None:
    """Two commits applied by one pass: each gets its own status (the commit that last
    changed the manifest, not the head), pending while its job runs, then success for
    the one that SUCCEEDED and failure naming the job for the one that FAILED; the same
    on GitLab (running -> success/failed); one webhook message for the failed job; a
    pass with nothing new posts nothing, and neither does a restarted daemon."""
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/good.json", job("good-job"))
    good = commit_as(repo, "Alice", "alice adds a job")
    repo.write("jobs/bad.json", job("bad-job"))
    bad = commit_as(repo, "Bob", "bob adds a job")
    repo.write("README.md", "docs only")
    head = commit_as(repo, "Erin", "docs")

    daemon = make_daemon()
    first = daemon.run_once()
    assert first.result == "ok" and first.revision == head
    settle(daemon)
    assert states(forge.state.posted(good)) == ["pending"]
    assert states(forge.state.posted(bad)) == ["pending"]
    assert forge.state.posted(head) == []  # the docs-only head caused nothing

    demo_backend.finish_job(job_id(controller, "good-job"), success=True)
    demo_backend.finish_job(job_id(controller, "bad-job"), success=False)
    daemon.run_once()
    settle(daemon)

    github_good, github_bad = forge.state.posted(good), forge.state.posted(bad)
    assert states(github_good) == ["pending", "success"]
    assert github_good[-1]["description"] == "1 job: 1 succeeded"
    assert states(github_bad) == ["pending", "failure"]
    assert github_bad[-1]["description"] == "1 job: 1 failed - failed: bad-job"
    assert github_bad[-1]["context"] == "batch-gitops"
    assert github_bad[-1]["target_url"] == (
        f"https://grafana.example.com/d/batch-gitops?var-commit={bad}"
    )
    assert states(forge.state.posted(good, "gitlab"))[-1] == "success"
    assert states(forge.state.posted(bad, "gitlab"))[-1] == "failed"
    # The GitHub Enterprise API root and GitLab's URL-encoded project path were used.
    assert forge.state.count("/api/v3/repos/data-team/batch-manifests/statuses/") == 4
    assert forge.state.count("/api/v4/projects/data%2Fbatch-manifests/statuses/") >= 4
    github = next(r for r in forge.state.received if r.path.startswith("/api/v3/"))
    assert github.headers["Authorization"] == f"Bearer {forge.state.github_token}"
    assert forge.state.errors == []

    failed = [h for h in forge.state.hooks if h["event"] == "job-failed"]
    assert len(failed) == 1
    message = failed[0]
    assert message["job"] == "bad-job" and message["queue"] == "test-queue"
    assert message["commit"] == bad and message["status"] == "FAILED"
    assert message["author"] == "Bob <bob@example.com>"
    assert message["manifest"] == "jobs/bad.json"
    assert "bad-job" in message["text"] and bad[:12] in message["text"]

    sent = len(forge.state.received)
    daemon.run_once()  # nothing changed: nothing is sent
    restarted = make_daemon()
    restarted.run_once()  # a restart remembers what was posted and told
    settle(daemon)
    settle(restarted)
    assert len(forge.state.received) == sent


def test_a_commit_whose_jobs_span_passes_reflects_all_of_them(
    controller: Controller, repo: GitRepo, forge: ForgeServer, make_daemon: DaemonFactory
) -> None:
    """A commit of three jobs that the pass time budget spreads over three passes stays
    pending until the last has run and ends with one status counting all three (a job
    is seen SUCCEEDED by the pass after the one that submitted it)."""
    repo.write("defs/trainer.json", DEFINITION)
    for name in ("a", "b", "c"):
        repo.write(f"jobs/{name}.json", job(f"job-{name}"))
    sha = commit_as(repo, "Alice", "three jobs")
    # Every pass starts one write, then its budget is used up: one submit per pass.
    daemon = make_daemon(max_pass_seconds=1e-6, concurrency=1)
    for _ in range(4):
        daemon.run_once()
    settle(daemon)
    assert len(controller.ledger.jobs_matching(revision_prefix=sha)) == 3
    posted = forge.state.posted(sha)
    assert states(posted) == ["pending", "pending", "pending", "success"], posted
    assert [p["description"] for p in posted] == [
        "1 job: 1 queued",
        "2 jobs: 1 queued, 1 succeeded",
        "3 jobs: 1 queued, 2 succeeded",
        "3 jobs: 3 succeeded",
    ]


def test_invalid_manifests_put_error_on_the_commit_that_broke_them(
    controller: Controller, repo: GitRepo, forge: ForgeServer, make_daemon: DaemonFactory
) -> None:
    """A commit that adds an invalid manifest gets an `error` status naming the file (and
    one webhook message); the next pass with the same broken file tells nothing again."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/broken.json", {"jobName": "x", "jobQueue": "test-queue"})
    sha = commit_as(repo, "Carol", "broken job")
    daemon = make_daemon()
    assert daemon.run_once().result == "degraded"
    daemon.run_once()
    settle(daemon)
    posted = forge.state.posted(sha)
    assert states(posted) == ["error"]
    assert posted[0]["description"] == "1 invalid manifest: jobs/broken.json"
    invalid = [h for h in forge.state.hooks if h["event"] == "manifests-invalid"]
    assert len(invalid) == 1 and invalid[0]["manifest"] == "jobs/broken.json"
    assert "jobDefinition" in invalid[0]["reason"]


@pytest.mark.parametrize("code", [500, 401])
def test_a_failing_forge_costs_the_pass_nothing(
    controller: Controller,
    repo: GitRepo,
    forge: ForgeServer,
    make_daemon: DaemonFactory,
    code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GitHub answering 500 (retried with backoff, then given up) or 401 (not retried):
    the pass is ok, the failure is counted and logged once for two statuses, and the
    next pass after the forge recovers posts the status that did not get through."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("job-a"))
    first = commit_as(repo, "Alice", "a")
    repo.write("jobs/b.json", job("job-b"))
    second = commit_as(repo, "Bob", "b")
    failed_before = sample("github", "failed")
    rejected_before = sample("github", "rejected")
    daemon = make_daemon(gitlab_token=None, notify_urls=None)
    attempts = 3 if code == 500 else 1  # FAST_RETRY: 3 attempts for a 5xx
    forge.state.fail_next(code, times=2 * attempts)
    outcome = daemon.run_once()
    assert outcome.result == "ok"
    settle(daemon)
    assert forge.state.count("/api/v3/") == 2 * attempts
    if code == 500:
        assert sample("github", "failed") - failed_before == 2
    else:
        assert sample("github", "rejected") - rejected_before == 2
    output = capsys.readouterr()
    logged = [
        line for line in (output.out + output.err).splitlines() if "notification_failed" in line
    ]
    assert len(logged) == 1, logged

    daemon.run_once()  # the forge is back: what did not get through is posted now
    settle(daemon)
    assert states(forge.state.posted(first)) == ["success"]
    assert states(forge.state.posted(second)) == ["success"]
    assert "notification_recovered" in "".join(capsys.readouterr())


def test_an_unreachable_forge_never_holds_a_pass(
    controller: Controller, repo: GitRepo, forge: ForgeServer, make_daemon: DaemonFactory
) -> None:
    """With the forge unreachable (nothing listens), passes finish and count their
    results while statuses wait in a bounded queue; one status per commit is queued,
    however many passes run."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("job-a"))
    commit_as(repo, "Alice", "a")
    forge.stop()
    daemon = make_daemon(gitlab_token=None, notify_urls=None)
    for _ in range(3):
        assert daemon.run_once().result == "ok"
    reporter = daemon.reporter
    assert reporter is not None
    sink = reporter.forges[0][1]
    assert len(sink._queue) <= 1


def test_bad_forge_settings_are_one_line_errors(controller: Controller, forge: ForgeServer) -> None:
    """A GitHub token with a local repository and no BATCH_GITOPS_GITHUB_REPOSITORY, an
    empty token file, or a notify URL that is not http(s) stop the daemon with a
    message naming the setting (and never the URL, which may be a secret)."""
    from controller.service.notify import NotifyConfigError

    local = forge_settings(controller, forge, github_repository="", gitlab_token=None)
    with pytest.raises(NotifyConfigError, match="BATCH_GITOPS_GITHUB_REPOSITORY"):
        Daemon(local, controller.api, controller.ledger)
    bad_url = forge_settings(controller, forge, notify_urls="hooks.slack.com/services/SECRET")
    with pytest.raises(NotifyConfigError, match="NOTIFY_URLS: URL 1 of 1") as raised:
        Daemon(bad_url, controller.api, controller.ledger)
    assert "SECRET" not in str(raised.value)


def test_a_rejected_submission_is_a_failure_naming_the_job(
    controller: Controller, repo: GitRepo, forge: ForgeServer, make_daemon: DaemonFactory
) -> None:
    """A job AWS Batch refuses to accept (its queue does not exist) makes its commit's
    status `failure` naming the job on GitHub and `failed` on GitLab, and one message
    with status REJECTED and AWS's reason."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/lost.json", job("lost-job", jobQueue="no-such-queue"))
    sha = commit_as(repo, "Dana", "a job for a queue that does not exist")
    daemon = make_daemon()
    assert daemon.run_once().result == "degraded"
    daemon.run_once()
    settle(daemon)
    posted = forge.state.posted(sha)
    assert states(posted) == ["failure"]
    assert posted[0]["description"] == "1 job: 1 rejected - failed: lost-job"
    assert states(forge.state.posted(sha, "gitlab")) == ["failed"]
    [message] = [h for h in forge.state.hooks if h["event"] == "job-failed"]
    assert message["status"] == "REJECTED" and message["queue"] == "no-such-queue"
    assert "no-such-queue" in message["reason"]
    assert forge.state.errors == []
