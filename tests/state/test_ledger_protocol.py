"""Every method of the Ledger protocol, on both stores: a SQLite file and a DynamoDB table
(moto over HTTP). The embedded store is the reference: each test asserts what both must
answer, so the shared store cannot drift from it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from controller.model.records import Provenance, ScheduleUpdate, StatusUpdate, TickRow
from controller.state.ledger import (
    ANY_RUN,
    WRITES_SENT_META,
    ClaimConflict,
    Ledger,
    WriterBusy,
)
from controller.state.sqlite import SqliteLedger
from controller.state.stores import open_ledger

QUEUE = "test-queue"
SHA = "0123abcd" + "0" * 32
OTHER_SHA = "fedc" + "1" * 36


def intent(
    ledger: Ledger,
    token: str,
    name: str = "a",
    *,
    replaces: str | None = ANY_RUN,
    manifest: str = "jobs/a.json",
    revision: str = SHA,
) -> None:
    ledger.record_intent(
        token=token,
        queue=QUEUE,
        name=name,
        manifest=manifest,
        spec_hash=f"hash-{token}",
        prune=True,
        provenance=Provenance(revision, "Ada", 1700000000.0),
        replaces=replaces,
    )


def submitted(ledger: Ledger, token: str, name: str = "a", status: str = "RUNNING") -> str:
    intent(ledger, token, name)
    ledger.record_submitted(token, f"job-{token}", status)
    return f"job-{token}"


def define(ledger: Ledger, arn: str, revision: int, name: str = "worker") -> None:
    ledger.record_definition(
        arn=arn,
        name=name,
        revision=revision,
        manifest=f"defs/{name}.json",
        spec_hash=f"h{revision}",
        prune=True,
        provenance=Provenance(SHA, "Ada"),
    )


def act(ledger: Ledger, name: str, aws_id: str, **fields: Any) -> None:
    """One audit action (``fields`` override the defaults)."""
    action: dict[str, Any] = {
        "pass_id": "p",
        "action": "submit",
        "kind": "job",
        "name": name,
        "queue": QUEUE,
        "manifest": f"jobs/{name}.json",
        "provenance": Provenance(SHA, "Ada", 1.0),
        "result": "ok",
        "aws_id": aws_id,
        "message": "",
    }
    ledger.record_action(**{**action, **fields})


def test_a_new_ledger_is_empty_until_something_is_recorded(ledger: Ledger) -> None:
    """is_empty: True for a new store; False after a run, a definition or the writes-sent
    mark; meta values round-trip and the location names the store."""
    assert ledger.is_empty()
    assert ledger.get_meta("last_applied_revision") is None
    ledger.set_meta("last_applied_revision", SHA)
    ledger.set_meta("last_applied_revision", OTHER_SHA)
    assert ledger.get_meta("last_applied_revision") == OTHER_SHA
    assert ledger.is_empty()  # meta alone is not a record
    ledger.set_meta(WRITES_SENT_META, "1")
    assert not ledger.is_empty()
    assert ledger.location.startswith(("dynamodb://", "/"))


def test_an_intent_is_the_current_run_until_replaced(ledger: Ledger) -> None:
    """An intent is current and open; submitted, it closes and is found by job ID; a new
    intent for the key replaces it (the old run stays in history, not current)."""
    intent(ledger, "t1", replaces=None)
    assert not ledger.is_empty()
    [opened] = ledger.open_intents()
    assert (opened.token, opened.state, opened.is_current) == ("t1", "intent", True)
    assert ledger.current_jobs()[(QUEUE, "a")].token == "t1"
    ledger.record_submitted("t1", "job-1")
    assert ledger.open_intents() == []
    found = ledger.job_by_id("job-1")
    assert found is not None and (found.token, found.state, found.status) == (
        "t1",
        "submitted",
        "SUBMITTED",
    )
    assert ledger.job_by_id("no-such-job") is None
    intent(ledger, "t2", replaces="t1")
    current = ledger.current_jobs()
    assert list(current) == [(QUEUE, "a")] and current[(QUEUE, "a")].token == "t2"
    runs = ledger.jobs()
    assert [(r.token, r.is_current) for r in runs] == [("t1", False), ("t2", True)]
    assert runs[1].revision == SHA and runs[1].author == "Ada"
    assert runs[1].committed_at == 1700000000.0 and runs[1].spec_hash == "hash-t2"


def test_two_writers_planning_from_the_same_state_only_one_claims(store_state: Any) -> None:
    """Two processes' ledgers on one store both plan 'a has no run' and claim at once:
    exactly one intent is written; the loser gets ClaimConflict. A claim planned from a
    run that was replaced since is refused too; ANY_RUN (rebuild) always writes."""
    first, second = open_ledger(store_state), open_ledger(store_state)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def claim(ledger: Ledger, token: str) -> None:
        barrier.wait(timeout=10)
        try:
            intent(ledger, token, replaces=None)
            outcomes[token] = "won"
        except ClaimConflict:
            outcomes[token] = "conflict"

    threads = [
        threading.Thread(target=claim, args=(first, "mine")),
        threading.Thread(target=claim, args=(second, "theirs")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["conflict", "won"]
    winner = next(token for token, result in outcomes.items() if result == "won")
    assert [r.token for r in first.jobs()] == [winner]
    with pytest.raises(ClaimConflict):
        intent(second, "late", replaces=None)  # planned before the winner's claim
    intent(second, "next", replaces=winner)  # planned from the winner's run: fine
    with pytest.raises(ClaimConflict):
        intent(first, "stale", replaces=winner)  # planned before "next"
    intent(first, "rebuilt", replaces=ANY_RUN)
    assert first.current_jobs()[(QUEUE, "a")].token == "rebuilt"
    assert len(first.jobs()) == 3
    first.close()
    second.close()


def test_statuses_fresh_and_not_visible(ledger: Ledger) -> None:
    """A read that returns a run refreshes its status (and clears missing_since); one that
    does not keeps the last status and records since when it is missing (first miss
    kept); record_status keeps the reason when given none; counts skip retired runs."""
    job_a = submitted(ledger, "ta", "a")
    job_b = submitted(ledger, "tb", "b")
    ledger.update_statuses(
        [
            StatusUpdate(job_a, seen=True, status="RUNNING", reason="started"),
            StatusUpdate(job_b, seen=False),
            StatusUpdate("not-ours", seen=True, status="FAILED"),
        ],
        now=100.0,
    )
    current = ledger.current_jobs()
    a, b = current[(QUEUE, "a")], current[(QUEUE, "b")]
    assert (a.status, a.status_reason, a.seen_at, a.missing_since) == ("RUNNING", "started", 100, 0)
    assert (b.status, b.missing_since, b.not_visible) == ("RUNNING", 100.0, True)
    ledger.update_statuses([StatusUpdate(job_b, seen=False)], now=130.0)
    assert ledger.current_jobs()[(QUEUE, "b")].missing_since == 100.0  # the first miss
    ledger.update_statuses(
        [StatusUpdate(job_b, seen=True, status="SUCCEEDED", array_summary='{"SUCCEEDED": 2}')],
        now=160.0,
    )
    b = ledger.current_jobs()[(QUEUE, "b")]
    assert (b.status, b.missing_since, b.seen_at) == ("SUCCEEDED", 0.0, 160.0)
    assert b.array_summary == {"SUCCEEDED": 2}
    ledger.record_status(job_a, "FAILED")
    a = ledger.current_jobs()[(QUEUE, "a")]
    assert (a.status, a.status_reason) == ("FAILED", "started")
    ledger.record_status(job_a, "FAILED", "Terminated by batch-gitops")
    assert ledger.current_jobs()[(QUEUE, "a")].status_reason == "Terminated by batch-gitops"
    assert ledger.job_status_counts() == {(QUEUE, "FAILED"): 1, (QUEUE, "SUCCEEDED"): 1}
    ledger.set_retired(QUEUE, "a", True)
    assert ledger.job_status_counts() == {(QUEUE, "SUCCEEDED"): 1}
    assert [r.name for r in ledger.jobs(include_retired=False)] == ["b"]
    ledger.set_retired(QUEUE, "a", False)
    assert not ledger.current_jobs()[(QUEUE, "a")].retired


def test_outcomes_renames_and_the_audit_queries(ledger: Ledger) -> None:
    """A rejected intent closes; a rename moves the current run to the new path; runs
    and actions are found by commit prefix, manifest and AWS id, oldest first."""
    intent(ledger, "t1", "a", replaces=None)
    ledger.record_outcome("t1", "rejected", "bad queue")
    assert ledger.open_intents() == []
    assert ledger.current_jobs()[(QUEUE, "a")].state == "rejected"
    job_b = submitted(ledger, "tb", "b")
    intent(ledger, "tc", "c", manifest="jobs/c.json", revision=OTHER_SHA)
    ledger.set_manifest(QUEUE, "b", "renamed/b.json")
    assert ledger.current_jobs()[(QUEUE, "b")].manifest == "renamed/b.json"
    assert [r.token for r in ledger.jobs_matching(manifest="renamed/b.json")] == ["tb"]
    assert [r.token for r in ledger.jobs_matching(revision_prefix="0123")] == ["t1", "tb"]
    assert [r.token for r in ledger.jobs_matching(revision_prefix="fedc")] == ["tc"]
    assert [r.token for r in ledger.jobs_matching(revision_prefix="f")] == ["tc"]
    assert ledger.jobs_matching(revision_prefix="0123", manifest="jobs/c.json") == []
    assert len(ledger.jobs_matching()) == 3
    for n, (aws_id, manifest, revision) in enumerate(
        [
            (job_b, "jobs/b.json", SHA),
            ("", "jobs/c.json", OTHER_SHA),
            (job_b, "jobs/b.json", OTHER_SHA),
        ]
    ):
        act(
            ledger,
            "b",
            aws_id,
            pass_id="p1",
            action="submit" if n < 2 else "cancel",
            manifest=manifest,
            provenance=Provenance(revision, "Ada", 1.0),
            message=f"n{n}",
        )
    assert [a["message"] for a in ledger.actions()] == ["n0", "n1", "n2"]
    assert [a["message"] for a in ledger.actions(aws_id=job_b)] == ["n0", "n2"]
    assert [a["message"] for a in ledger.actions(manifest="jobs/c.json")] == ["n1"]
    assert [a["message"] for a in ledger.actions(revision="fedc")] == ["n1", "n2"]
    assert [a["message"] for a in ledger.actions(revision="fedc", aws_id=job_b)] == ["n2"]
    assert [a["message"] for a in ledger.actions(limit=2)] == ["n0", "n1"]
    row = ledger.actions(manifest="jobs/c.json")[0]
    assert (row["action"], row["author"], row["aws_id"], row["result"]) == (
        "submit",
        "Ada",
        "",
        "ok",
    )
    ledger.start_pass("p1")
    ledger.finish_pass("p1", SHA, "ok", {"submit_ok": 2})


def test_definitions_active_until_deregistered(ledger: Ledger) -> None:
    """ACTIVE revisions by name, oldest first; a deregistered one leaves the list."""
    for revision in (2, 1):
        define(
            ledger,
            f"arn:aws:batch:us-east-1:123456789012:job-definition/worker:{revision}",
            revision,
        )
    assert not ledger.is_empty()
    active = ledger.active_definitions()
    assert [d.revision for d in active["worker"]] == [1, 2]
    assert active["worker"][1].commit_sha == SHA and active["worker"][1].status == "ACTIVE"
    ledger.record_deregistered(active["worker"][0].arn)
    ledger.record_deregistered("arn:aws:batch:us-east-1:123456789012:job-definition/none:1")
    assert [d.revision for d in ledger.active_definitions()["worker"]] == [2]


def schedule(tick: TickRow | None, last: float | None = None) -> ScheduleUpdate:
    return ScheduleUpdate(
        queue=QUEUE,
        name="report",
        manifest="jobs/report.json",
        cron="* * * * *",
        timezone="UTC",
        since=1000.0,
        last_tick=last,
        tick=tick,
    )


def tick_row(tick: float, outcome: str = "run") -> TickRow:
    return TickRow(QUEUE, "report", tick, f"report-{int(tick)}", outcome, decided_at=tick + 5)


def test_schedules_ticks_and_which_ticks_are_open(ledger: Ledger) -> None:
    """A run tick is open until its run is submitted and finished (an intent, an active
    or a rejected run keep it open); skipped ticks never are; a tick recorded twice
    stays as first decided; a removed schedule turns inactive, keeping its position."""
    ledger.record_schedules([schedule(tick_row(1060.0), last=1060.0)], [])
    ledger.record_schedules([schedule(tick_row(1120.0, "skipped"), last=1120.0)], [])
    ledger.record_schedules([schedule(tick_row(1180.0), last=1180.0)], [])
    ledger.record_schedules([schedule(None)], [])  # a pass deciding nothing keeps last_tick
    [row] = ledger.schedules().values()
    assert (row.last_tick, row.since, row.active, row.cron) == (1180.0, 1000.0, True, "* * * * *")
    assert ledger.open_ticks() == {(QUEUE, "report"): [1060.0, 1180.0]}
    intent(ledger, "r1", "report-1060")
    ledger.record_submitted("r1", "job-r1", "RUNNING")
    assert ledger.open_ticks() == {(QUEUE, "report"): [1060.0, 1180.0]}
    ledger.update_statuses([StatusUpdate("job-r1", seen=True, status="SUCCEEDED")], now=2000.0)
    assert ledger.open_ticks() == {(QUEUE, "report"): [1180.0]}
    intent(ledger, "r2", "report-1180")
    ledger.record_outcome("r2", "rejected", "no such queue")
    assert ledger.open_ticks() == {(QUEUE, "report"): [1180.0]}
    duplicate = TickRow(QUEUE, "report", 1180.0, "report-1180", "skipped", decided_at=9999.0)
    ledger.record_schedules([schedule(duplicate, last=1180.0)], [])
    assert [(t.tick, t.outcome, t.decided_at) for t in ledger.ticks(QUEUE, "report")] == [
        (1060.0, "run", 1065.0),
        (1120.0, "skipped", 1125.0),
        (1180.0, "run", 1185.0),
    ]
    assert len(ledger.ticks()) == 3
    ledger.record_schedules([], [(QUEUE, "report"), (QUEUE, "never-seen")])
    [row] = ledger.schedules().values()
    assert (row.active, row.last_tick) == (False, 1180.0)


def test_prune_deletes_only_what_never_matters_again(ledger: Ledger) -> None:
    """With every record older than the cutoff: superseded and retired finished runs,
    finished ticks with their runs, skipped ticks, INACTIVE definitions, actions and
    finished passes go; current runs of jobs in git, active runs, intents, open ticks and
    ACTIVE definitions stay. A dry run counts the same and deletes nothing."""
    submitted(ledger, "old", "keep", "SUCCEEDED")
    intent(ledger, "new", "keep", replaces="old")
    ledger.record_submitted("new", "job-new", "SUCCEEDED")  # current, in git: stays
    submitted(ledger, "gone", "gone", "FAILED")
    ledger.set_retired(QUEUE, "gone", True)  # retired and over: goes
    submitted(ledger, "busy", "busy", "RUNNING")  # active: stays
    intent(ledger, "open", "open")  # intent: stays
    ledger.record_schedules([schedule(tick_row(1060.0), last=1060.0)], [])
    ledger.record_schedules([schedule(tick_row(1120.0, "skipped"), last=1120.0)], [])
    ledger.record_schedules([schedule(tick_row(1180.0), last=1180.0)], [])
    submitted(ledger, "t1", "report-1060", "SUCCEEDED")  # finished tick: goes with its run
    define(ledger, "worker:1", 1)
    define(ledger, "worker:2", 2)
    ledger.record_deregistered("worker:1")
    act(ledger, "keep", "job-new")
    ledger.start_pass("p")
    ledger.finish_pass("p", SHA, "ok", {})
    ledger.start_pass("unfinished")
    cutoff = time.time() + 60
    preview = ledger.prune(cutoff, dry_run=True)
    assert len(ledger.jobs()) == 6
    result = ledger.prune(cutoff)
    expected = {"jobs": 3, "ticks": 2, "definitions": 1, "actions": 1, "passes": 1}
    assert {k: v for k, v in result.as_dict().items() if k != "dry_run"} == expected
    assert {k: v for k, v in preview.as_dict().items() if k != "dry_run"} == expected
    assert sorted(r.token for r in ledger.jobs()) == ["busy", "new", "open"]
    assert sorted(ledger.current_jobs()) == [(QUEUE, "busy"), (QUEUE, "keep"), (QUEUE, "open")]
    assert [t.tick for t in ledger.ticks()] == [1180.0]
    assert ledger.open_ticks() == {(QUEUE, "report"): [1180.0]}
    assert [d.revision for d in ledger.active_definitions()["worker"]] == [2]
    assert ledger.actions() == []
    assert ledger.prune(cutoff).as_dict()["jobs"] == 0
    intent(ledger, "again", "gone", replaces=None)  # the pruned key is new again


def test_the_writer_lock_excludes_a_second_writer_and_names_the_holder(ledger: Ledger) -> None:
    """Held by one writer, the lock refuses a second (after --wait) naming host and pid;
    released, the second gets it. The shared store's lock hands out a fence."""
    first = ledger.writer_lock("reconcile")
    fence = first.acquire(0)
    second = ledger.writer_lock("ledger prune")
    with pytest.raises(WriterBusy) as busy:
        second.acquire(0.3)
    holder = busy.value.holder
    assert holder is not None and holder.pid == os.getpid() and holder.purpose == "reconcile"
    assert "another writer" in str(busy.value) and "after waiting 0.3s" in str(busy.value)
    first.release()
    assert (second.acquire(5) is None) == isinstance(ledger, SqliteLedger)
    second.release()
    assert (fence is None) == isinstance(ledger, SqliteLedger)


def test_backup_is_a_ledger_file_with_the_same_records(ledger: Ledger, tmp_path: Path) -> None:
    """backup() writes a SQLite ledger holding the same runs, definitions, schedules,
    ticks, audit actions and meta; it opens as --state."""
    submitted(ledger, "t1", "a", "SUCCEEDED")
    intent(ledger, "t2", "a", replaces="t1")
    intent(ledger, "t3", "b")
    ledger.set_meta("last_applied_revision", SHA)
    define(ledger, "worker:1", 1)
    ledger.record_schedules([schedule(tick_row(1060.0), last=1060.0)], [])
    act(ledger, "a", "job-t1")
    copy = SqliteLedger(tmp_path / "backup.sqlite")
    copy.close()
    (tmp_path / "backup.sqlite").unlink()
    ledger.backup(tmp_path / "backup.sqlite")
    restored = SqliteLedger(tmp_path / "backup.sqlite")
    assert restored.current_jobs() == ledger.current_jobs()
    assert restored.jobs() == ledger.jobs()
    assert restored.active_definitions() == ledger.active_definitions()
    assert restored.schedules() == ledger.schedules()
    assert restored.ticks() == ledger.ticks()
    assert restored.open_ticks() == ledger.open_ticks()
    assert restored.open_intents() == ledger.open_intents()
    assert restored.get_meta("last_applied_revision") == SHA
    assert [a["aws_id"] for a in restored.actions()] == ["job-t1"]
    restored.close()
