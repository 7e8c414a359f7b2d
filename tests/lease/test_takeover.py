"""Two daemons (their own ledgers, one repository, one AWS account) hand the lease back
and forth in-process: the new leader adopts what the old one did instead of
submitting it again, and a pass that loses the lease stops writing at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.aws.batch import Boto3Batch
from controller.demo import backend as demo_backend
from controller.service.daemon import Daemon
from tests.conftest import GitRepo, WriteCounter
from tests.lease.conftest import TABLE, Clock
from tests.support.aws import runs_by_name
from tests.support.controllers import make_daemon, make_settings
from tests.support.manifests import QUEUE, definition, job

# job(name, **extra) and runs_by_name(batch) are the shared ones (test_replicas imports them).
__all__ = ["QUEUE", "job", "runs_by_name"]

DEFINITION = definition("trainer")


def replica(name: str, repo: GitRepo, tmp_path: Path, **overrides: Any) -> Daemon:
    """A daemon named ``name`` with its own ledger and cache, leading through the lease."""
    settings = make_settings(
        repo,
        tmp_path,
        state=tmp_path / f"{name}.sqlite",
        workdir=tmp_path / f"{name}-cache",
        lease_table=TABLE,
        lease_seconds=30,
        holder_id=name,
        **overrides,
    )
    return make_daemon(settings)


def writes(outcome: Any) -> list[tuple[str, str]]:
    return [(r.action.action, r.action.name) for r in outcome.results]


def test_new_leader_adopts_instead_of_resubmitting(
    dynamodb: Any, repo: GitRepo, tmp_path: Path, batch: Any
) -> None:
    """A applies a, b; B (empty ledger) takes over and writes nothing; B replaces a changed
    job; A takes the lease back and adopts B's run of it: every name runs once per spec."""
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("a"))
    repo.write("jobs/b.json", job("b"))
    repo.commit("a, b")
    a, b = replica("a", repo, tmp_path), replica("b", repo, tmp_path)
    assert a.run_once().result == "ok"
    assert b.run_once().result == "standby"
    assert runs_by_name(batch) == {"a": 1, "b": 1}

    assert a.lease is not None and b.lease is not None
    a.lease.release()
    sent_by_b = WriteCounter(b.api)  # type: ignore[arg-type]
    taken = b.run_once()
    assert taken.result == "ok", taken.message
    assert sent_by_b.writes == []  # the definition and both jobs adopted, nothing re-sent
    assert {key[1] for key in b.ledger.current_jobs()} == {"a", "b"}

    repo.write("jobs/a.json", job("a", parameters={"epochs": "2"}))
    repo.commit("a: 2 epochs")
    changed = b.run_once()
    assert writes(changed) == [("cancel", "a"), ("submit", "a")]

    b.lease.release()
    sent_by_a = WriteCounter(a.api)  # type: ignore[arg-type]
    back = a.run_once()
    assert back.result == "ok", back.message
    assert sent_by_a.writes == []  # A adopts B's newer run of a instead of replacing it again
    assert runs_by_name(batch) == {"a": 2, "b": 1}
    for daemon in (a, b):
        daemon.ledger.close()


def test_pass_that_loses_the_lease_stops_writing(
    dynamodb: Any, repo: GitRepo, tmp_path: Path, batch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease runs out after two of five submits: the pass ends 'lease-lost' with no
    third SubmitJob sent; the next leader submits the other three, none twice."""
    repo.write("defs/trainer.json", DEFINITION)
    for name in "abcde":
        repo.write(f"jobs/{name}.json", job(name))
    repo.commit("five jobs")
    a = replica("a", repo, tmp_path, concurrency=1)
    b = replica("b", repo, tmp_path)
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

    a.lease.release()  # (or b waits out the silent lease; see test_lease_protocol)
    taken = b.run_once()
    assert taken.result == "ok", taken.message
    assert sorted(name for action, name in writes(taken) if action == "submit") == ["c", "d", "e"]
    assert runs_by_name(batch) == dict.fromkeys("abcde", 1)
    for daemon in (a, b):
        daemon.ledger.close()
