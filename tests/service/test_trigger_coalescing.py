"""A push during a pass is never lost: it leaves exactly one follow-up pass, which starts
when the running pass ends and applies the pushed commit; ten pushes make one follow-up.

A real daemon (runner thread, APScheduler, waitress, the webhook) against moto and a
real git repository. The running pass is held inside its SubmitJob by a gate in the
adapter (our own boundary), so "during a pass" is a fact, not a race with the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from controller.aws.batch import Boto3Batch
from controller.engine.reconcile import PassResult
from controller.service.daemon import Daemon
from tests.conftest import Controller, GitRepo
from tests.git_pressure.conftest import DEFINITION, job
from tests.service.pushes import SECRET, push_event, wait_for


class GatedBatch(Boto3Batch):
    """Boto3Batch whose SubmitJobs wait for ``gate`` (open by default)."""

    def __init__(self) -> None:
        super().__init__(rate_limit=1000, max_attempts=3)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def submit_job(self, request: dict[str, Any]) -> str:
        self.waiting.set()
        assert self.gate.wait(timeout=60), "the test never opened the gate"
        return super().submit_job(request)


@pytest.fixture
def gated(controller: Controller, repo: GitRepo) -> Iterator[tuple[Daemon, GatedBatch]]:
    """A daemon whose first pass is held in its first SubmitJob (job ``a``)."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("a"))
    repo.commit("a")
    api = GatedBatch()
    api.gate.clear()
    settings = controller.settings.model_copy(
        update={"interval": 3600.0, "listen": "127.0.0.1:0", "webhook_secret": SecretStr(SECRET)}
    )
    daemon = Daemon(settings, api, controller.ledger)
    outcomes: list[PassResult] = []
    run_once = daemon.run_once

    def recorded() -> PassResult:
        outcome = run_once()
        outcomes.append(outcome)
        return outcome

    daemon.run_once = recorded  # type: ignore[method-assign]
    daemon.outcomes = outcomes  # type: ignore[attr-defined]
    daemon.start()
    try:
        assert api.waiting.wait(timeout=30), "the first pass never reached SubmitJob"
        yield daemon, api
    finally:
        api.gate.set()
        daemon.stop()


def submitted(batch: Any, name: str) -> int:
    listed = batch.list_jobs(jobQueue="test-queue")["jobSummaryList"]
    return sum(1 for j in listed if j["jobName"] == name)


def test_ten_pushes_during_a_pass_make_one_follow_up_that_applies_the_push(
    gated: tuple[Daemon, GatedBatch], repo: GitRepo, batch: Any, tmp_path: Path
) -> None:
    """While pass 1 is held in SubmitJob, job b is committed and announced by ten signed
    push events (each 202). Nothing runs beside pass 1; one pass is pending. When pass 1
    ends, exactly one follow-up runs, at the new head, and submits b once; afterwards no
    pass is pending, and the next push runs exactly one more."""
    daemon, api = gated
    repo.write("jobs/b.json", job("b"))
    head = repo.commit("b")
    hook = f"http://127.0.0.1:{daemon.server.server_port}/webhook"
    assert [push_event(hook) for _ in range(10)] == [202] * 10
    assert daemon.passes == 0 and daemon.pass_pending

    api.gate.set()
    wait_for(lambda: daemon.passes >= 2)
    assert not daemon.pass_pending  # the ten pushes are spent: no third pass will start
    outcomes: list[PassResult] = daemon.outcomes  # type: ignore[attr-defined]
    assert outcomes[0].revision != head  # pass 1 had read the branch before the push
    follow_up = outcomes[1]
    assert follow_up.revision == head and follow_up.result == "ok", follow_up.message
    assert follow_up.counts().get("submit_ok") == 1
    assert (submitted(batch, "a"), submitted(batch, "b")) == (1, 1)

    assert push_event(hook) == 202  # a positive event after which to count
    wait_for(lambda: daemon.passes >= 3)
    assert daemon.passes == 3 and not daemon.pass_pending


def test_an_interval_tick_during_a_pass_is_skipped_but_a_trigger_is_kept(
    gated: tuple[Daemon, GatedBatch],
) -> None:
    """The interval's own tick during a pass asks for nothing (the pass in flight reads
    the branch anyway); a trigger (webhook, cron tick, new lease term) leaves one pass
    pending."""
    daemon, _ = gated
    daemon._interval_tick()
    assert not daemon.pass_pending
    daemon.trigger()
    daemon.trigger()
    assert daemon.pass_pending and daemon.passes == 0
