"""Outgoing notifications: one Slack-compatible message per event (not per pass), a
per-URL rate limit, and the events a pass can raise, against a stand-in receiver on
127.0.0.1."""

from __future__ import annotations

import shutil
import time
from typing import Any

from pydantic import SecretStr

from controller import metrics
from controller.demo import backend as demo_backend
from controller.service.notify.delivery import Sink
from controller.service.notify.events import Event, Notifier
from tests.conftest import Controller, GitRepo
from tests.service.conftest import (
    DEFINITION,
    FAST_RETRY,
    DaemonFactory,
    commit_as,
    job,
    settle,
)
from tests.support.forge_server import ForgeServer

FIELDS = {"text", "event", "commit", "author", "manifest", "job", "queue", "status", "reason"}


def sample(result: str) -> float:
    return metrics.NOTIFICATIONS.labels(sink="webhook", result=result)._value.get()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def events(forge: ForgeServer, kind: str) -> list[dict[str, Any]]:
    return [hook for hook in forge.state.hooks if hook["event"] == kind]


def test_a_flood_is_deduplicated_and_rate_limited(forge: ForgeServer) -> None:
    """100 failed jobs, each reported twice, to a URL allowed 10 messages a minute: 10
    messages arrive, 90 are counted rate-limited and 100 deduplicated; once the bucket
    refills, the next message says how many were dropped."""
    clock = FakeClock()
    notifier = Notifier(
        [SecretStr(f"{forge.url}/hooks/T1/B1/flood")],
        controller_id="batch-gitops",
        rate_per_minute=10,
        make_sink=lambda: Sink("webhook", retry=FAST_RETRY),
        clock=clock,
    )
    before = {result: sample(result) for result in ("sent", "rate-limited", "deduplicated")}
    try:
        for round_ in range(2):
            for n in range(100):
                told = notifier.notify(
                    Event("job-failed", f"job-failed:{n}", f"job {n} FAILED", job=f"job-{n}")
                )
                assert told == (round_ == 0)
        assert all(sink.wait_idle(10) for sink in notifier.sinks)
        assert len(forge.state.hooks) == 10
        clock.now += 6.0  # a tenth of a minute: one message's worth
        notifier.notify(Event("job-failed", "job-failed:late", "late FAILED", job="late"))
        assert all(sink.wait_idle(10) for sink in notifier.sinks)
    finally:
        notifier.close(1.0)
    assert sample("sent") - before["sent"] == 11
    assert sample("rate-limited") - before["rate-limited"] == 90
    assert sample("deduplicated") - before["deduplicated"] == 100
    last = forge.state.hooks[-1]
    assert last["job"] == "late" and last["dropped"] == 90
    assert "90 earlier notifications were dropped" in last["text"]
    assert set(last) >= FIELDS
    assert forge.state.errors == []


def test_held_prunes_and_a_rejected_signature_are_told_once(
    controller: Controller, repo: GitRepo, forge: ForgeServer, make_daemon: DaemonFactory
) -> None:
    """Removing every manifest of running jobs past the mass-prune guard sends one
    prunes-held message over two passes; an unsigned head with signature checks on
    sends one signature-rejected message naming the commit over two passes."""
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    for name in ("a", "b", "c"):
        repo.write(f"jobs/{name}.json", job(f"job-{name}"))
    commit_as(repo, "Alice", "three jobs")
    daemon = make_daemon(github_token=None, gitlab_token=None, prune_max_jobs=1)
    daemon.run_once()
    repo.remove("jobs")
    removal = commit_as(repo, "Mallory", "remove every job")
    for _ in range(2):
        assert daemon.run_once().plan.held  # type: ignore[union-attr]
    settle(daemon)
    [held] = events(forge, "prunes-held")
    assert held["commit"] == removal and held["status"] == "held"
    assert held["job"] == "test-queue/job-a, test-queue/job-b, test-queue/job-c"
    assert "ALLOW_MASS_PRUNE" in held["text"]

    repo.write("README.md", "unsigned")
    unsigned = commit_as(repo, "Mallory", "unsigned head")
    checking = make_daemon(github_token=None, gitlab_token=None, verify_signatures=True)
    for _ in range(2):
        assert checking.run_once().result == "untrusted"
    settle(checking)
    [rejected] = events(forge, "signature-rejected")
    assert rejected["commit"] == unsigned and rejected["author"] == "Mallory <mallory@example.com>"
    assert unsigned[:12] in rejected["text"]
    assert forge.state.errors == []


def test_an_unreachable_source_is_told_after_the_setting_and_its_recovery_too(
    controller: Controller, repo: GitRepo, forge: ForgeServer, make_daemon: DaemonFactory
) -> None:
    """With the repository gone, the first failing pass tells nothing (the source has not
    been down for the setting yet), a later one tells once, and the first good pass after
    it says the source is back."""
    repo.write("README.md", "nothing to run")
    commit_as(repo, "Alice", "empty")
    daemon = make_daemon(
        github_token=None, gitlab_token=None, notify_source_unreachable_after="50ms"
    )
    assert daemon.run_once().result == "ok"
    moved = repo.path.with_name("moved")
    shutil.move(repo.path, moved)
    try:
        assert daemon.run_once().result == "source-error"
        settle(daemon)
        assert events(forge, "source-unreachable") == []
        time.sleep(0.1)  # past the 50ms setting (a lower bound, never a race)
        for _ in range(2):
            assert daemon.run_once().result == "source-error"
    finally:
        shutil.move(moved, repo.path)
    assert daemon.run_once().result == "ok"
    settle(daemon)
    [down] = events(forge, "source-unreachable")
    assert down["status"] == "source-error" and down["reason"]
    [back] = events(forge, "source-recovered")
    assert back["status"] == "recovered"


def test_a_replica_that_takes_over_does_not_tell_again(
    controller: Controller, repo: GitRepo, forge: ForgeServer, make_daemon: DaemonFactory
) -> None:
    """Two daemons on one ledger (as replicas share one store): the one started first but
    leading after the other stopped reads what the other remembered, so a failed job is
    one message and its commit's final status is posted once, not once per replica."""
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/bad.json", job("bad-job"))
    sha = commit_as(repo, "Bob", "a job that fails")
    standby = make_daemon()  # started now, leads later
    leader = make_daemon()
    leader.run_once()
    run = controller.ledger.current_jobs()[("test-queue", "bad-job")]
    assert run.job_id
    demo_backend.finish_job(run.job_id, success=False)
    leader.run_once()
    settle(leader)
    assert len(events(forge, "job-failed")) == 1
    sent = len(forge.state.received)
    leader.stop()  # a rolling update: the leader stops, the standby leads
    standby.run_once()
    settle(standby)
    assert len(events(forge, "job-failed")) == 1
    assert len(forge.state.received) == sent
    assert [p["state"] for p in forge.state.posted(sha)] == ["pending", "failure"]
