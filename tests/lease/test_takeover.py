"""Two daemons on one shared DynamoDB ledger (one repository, one AWS account: moto over
HTTP) hand the lease back and forth in-process: a new leader knows everything the old
one did (nothing is adopted or sent again), a pass that loses the lease stops writing,
and a deposed leader that still believes it leads cannot claim anything."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from controller.aws.batch import Boto3Batch
from controller.demo import backend as demo_backend
from controller.service.daemon import Daemon
from tests.conftest import GitRepo, WriteCounter, dynamodb_ledger_location
from tests.support.aws import runs_by_name
from tests.support.clock import Clock
from tests.support.consistency_proxy import ConsistencyProxy
from tests.support.controllers import make_daemon, make_settings
from tests.support.manifests import QUEUE, definition, job

# job(name, **extra) and runs_by_name(batch) are the shared ones (test_replicas imports them).
__all__ = ["QUEUE", "job", "runs_by_name"]

DEFINITION = definition("trainer")


@pytest.fixture
def shared(moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch) -> str:
    """The --state of both replicas: one new DynamoDB ledger table."""
    return dynamodb_ledger_location(moto, monkeypatch)


def replica(name: str, repo: GitRepo, tmp_path: Path, state: str, **overrides: Any) -> Daemon:
    """A daemon named ``name`` on the shared ledger ``state`` (its lease in the ledger's
    table), with a git cache of its own."""
    settings = make_settings(
        repo,
        tmp_path,
        state=state,
        workdir=tmp_path / f"{name}-cache",
        lease_seconds=30,
        holder_id=name,
        **overrides,
    )
    return make_daemon(settings)


def writes(outcome: Any) -> list[tuple[str, str]]:
    return [(r.action.action, r.action.name) for r in outcome.results]


def test_a_new_leader_knows_everything_and_sends_nothing_again(
    shared: str, repo: GitRepo, tmp_path: Path, batch: Any
) -> None:
    """A applies a, b; B takes over and writes nothing (the shared ledger holds A's runs);
    B replaces a changed job; A takes the lease back and writes nothing either: every
    name runs once per spec."""
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("a"))
    repo.write("jobs/b.json", job("b"))
    repo.commit("a, b")
    a, b = replica("a", repo, tmp_path, shared), replica("b", repo, tmp_path, shared)
    assert a.run_once().result == "ok"
    assert b.run_once().result == "standby"
    assert runs_by_name(batch) == {"a": 1, "b": 1}

    assert a.lease is not None and b.lease is not None
    a.lease.release()
    sent_by_b = WriteCounter(b.api)  # type: ignore[arg-type]
    taken = b.run_once()
    assert taken.result == "ok", taken.message
    assert sent_by_b.writes == [] and taken.results == []  # nothing adopted, nothing sent
    assert b.lease.term == a.lease.term + 1

    repo.write("jobs/a.json", job("a", parameters={"epochs": "2"}))
    repo.commit("a: 2 epochs")
    changed = b.run_once()
    assert writes(changed) == [("cancel", "a"), ("submit", "a")]

    b.lease.release()
    sent_by_a = WriteCounter(a.api)  # type: ignore[arg-type]
    back = a.run_once()
    assert back.result == "ok", back.message
    assert sent_by_a.writes == [] and back.results == []
    assert runs_by_name(batch) == {"a": 2, "b": 1}


def test_a_pass_that_loses_the_lease_stops_and_the_next_leader_settles_its_claim(
    shared: str, repo: GitRepo, tmp_path: Path, batch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's lease runs out after two of five submits: its third claim is written but its
    SubmitJob never leaves (lease-lost). B settles that open claim with the settle grace,
    as after a crash: c waits while it could still appear in AWS, then is submitted once
    with d and e."""
    repo.write("defs/trainer.json", DEFINITION)
    for name in "abcde":
        repo.write(f"jobs/{name}.json", job(name))
    repo.commit("five jobs")
    a = replica("a", repo, tmp_path, shared, concurrency=1)
    b = replica("b", repo, tmp_path, shared, settle_grace=1.0)
    assert a.lease is not None and b.lease is not None
    clock = Clock()
    monkeypatch.setattr(a.lease, "clock", clock)
    sent: list[str] = []

    def after_two_submits(**_: Any) -> None:
        sent.append("SubmitJob")
        if len(sent) == 3:  # a freezes past its lease before the third send
            clock.advance(60)

    assert isinstance(a.api, Boto3Batch)
    a.api.submit_client.meta.events.register_first("before-send.batch.SubmitJob", after_two_submits)
    lost = a.run_once()
    assert lost.result == "lease-lost", lost.message
    assert runs_by_name(batch) == {"a": 1, "b": 1}
    assert [r.name for r in b.ledger.open_intents()] == ["c"]

    a.lease.release()  # (or b waits out the silent lease; see test_lease_protocol)
    taken = b.run_once()
    assert taken.result == "ok", taken.message
    assert sorted(name for action, name in writes(taken) if action == "submit") == ["d", "e"]
    assert taken.settled is not None and taken.settled.unknown == 1  # c: within the grace
    deadline = time.monotonic() + 30
    while runs_by_name(batch).get("c") is None:
        assert time.monotonic() < deadline, "c was never submitted"
        time.sleep(0.3)
        b.run_once()
    assert runs_by_name(batch) == dict.fromkeys("abcde", 1)


def test_a_deposed_leader_that_believes_it_leads_cannot_claim(
    shared: str, repo: GitRepo, tmp_path: Path, batch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A is frozen mid-pass (its clock stops: it still trusts its lease) while B watches the
    lease go silent and takes it. A wakes and goes on: its next claim fails the fence in
    the same transaction, so no SubmitJob leaves; B submits the rest, each once."""
    repo.write("defs/trainer.json", DEFINITION)
    for name in "abcde":
        repo.write(f"jobs/{name}.json", job(name))
    repo.commit("five jobs")
    a = replica("a", repo, tmp_path, shared, concurrency=1)
    b = replica("b", repo, tmp_path, shared)
    assert a.lease is not None and b.lease is not None
    monkeypatch.setattr(a.lease, "clock", Clock())  # frozen: A's lease never runs out for A
    b_clock = Clock()
    monkeypatch.setattr(b.lease, "clock", b_clock)
    sent: list[str] = []

    def b_takes_over_after_two(**_: Any) -> None:
        sent.append("SubmitJob")
        if len(sent) == 2:
            assert not b.lease.try_acquire()  # b sees a's lease ...
            b_clock.advance(b.lease.lease_seconds)  # ... unchanged for a whole lease
            assert b.lease.try_acquire()

    assert isinstance(a.api, Boto3Batch)
    a.api.submit_client.meta.events.register_first(
        "before-send.batch.SubmitJob", b_takes_over_after_two
    )
    fenced = a.run_once()
    assert fenced.result == "lease-lost" and "no longer held" in fenced.message
    assert a.lease.held()  # a still believed it led: only the fence stopped it
    assert len(sent) == 2 and runs_by_name(batch) == {"a": 1, "b": 1}
    assert b.ledger.open_intents() == []  # the fenced claim wrote nothing
    taken = b.run_once()
    assert taken.result == "ok", taken.message
    assert sorted(name for action, name in writes(taken) if action == "submit") == ["c", "d", "e"]
    assert runs_by_name(batch) == dict.fromkeys("abcde", 1)


class Killed(BaseException):
    """The process dies here (not an error a pass could catch)."""


def test_a_new_leader_settles_the_old_leaders_claim_under_listing_lag(
    shared: str,
    repo: GitRepo,
    tmp_path: Path,
    batch: Any,
    moto: demo_backend.MotoBatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dies after AWS accepted its SubmitJob but before it recorded the job ID, and AWS
    lists the job late: the new leader keeps the claim open (within the settle grace)
    instead of submitting again, and adopts the job by its tag once AWS lists it."""
    proxy = ConsistencyProxy(moto.endpoint, list_lag=30.0).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", proxy.endpoint)
    try:
        repo.write("defs/trainer.json", DEFINITION)
        repo.write("jobs/a.json", job("a"))
        repo.commit("a")
        a = replica("a", repo, tmp_path, shared)
        b = replica("b", repo, tmp_path, shared)
        assert a.lease is not None and b.lease is not None

        def die(**_: Any) -> None:
            raise Killed

        assert isinstance(a.api, Boto3Batch)
        a.api.submit_client.meta.events.register("after-call.batch.SubmitJob", die)
        with pytest.raises(Killed):
            a.run_once()
        assert runs_by_name(batch) == {"a": 1}  # AWS has it (moto, read directly) ...
        [claim] = b.ledger.open_intents()  # ... the ledger only the claim
        a.lease.release()

        sent = WriteCounter(b.api)  # type: ignore[arg-type]
        for _ in range(2):  # AWS does not list it yet: the key waits, nothing is sent
            waiting = b.run_once()
            assert waiting.settled is not None and waiting.settled.unknown == 1
        assert sent.writes == [] and proxy.left_out["ListJobs"] >= 2
        proxy.set_lag(0.0)
        adopted = b.run_once()
        assert adopted.settled is not None and adopted.settled.adopted == 1
        assert sent.writes == [] and b.ledger.open_intents() == []
        assert b.ledger.current_jobs()[(QUEUE, "a")].token == claim.token
        assert runs_by_name(batch) == {"a": 1}
    finally:
        proxy.stop()
