"""What only the shared store has: fences checked with every claim, the lease as the
writer lock (renewed while held, taken over from a holder that died), a pass that reads
by Query only, and the commands that create and fill a table (moto over HTTP)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from controller.cli.main import main
from controller.demo import backend as demo_backend
from controller.model.records import Provenance
from controller.settings import Settings
from controller.state.dynamodb import DynamoLedger
from controller.state.dynamodb_layout import table_definition
from controller.state.ledger import Fenced, LedgerError, WriterBusy
from controller.state.stores import open_ledger
from tests.conftest import Controller, GitRepo, dynamodb_ledger_location, make_controller
from tests.reliability.conftest import NUMBERS

QUEUE = "test-queue"
WORKER = {
    "jobDefinitionName": "w",
    "type": "container",
    "containerProperties": {"image": "x", "vcpus": 1, "memory": 8},
}


@pytest.fixture
def shared(moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch) -> str:
    """The --state of a new DynamoDB ledger table."""
    return dynamodb_ledger_location(moto, monkeypatch)


def claim(ledger: Any, token: str, fence: Any, replaces: str | None = None) -> None:
    ledger.record_intent(
        token=token,
        queue=QUEUE,
        name="a",
        manifest="jobs/a.json",
        spec_hash="h",
        prune=True,
        provenance=Provenance("abc"),
        replaces=replaces,
        fence=fence,
    )


def test_a_deposed_holders_claim_is_fenced(shared: str) -> None:
    """A holds the lease and claims with its fence; B takes over (a new term): A's next
    claim fails with Fenced and writes nothing, B's succeeds."""
    ledger = open_ledger(shared)
    lock_a = ledger.writer_lock("run")
    fence_a = lock_a.acquire(0)
    assert fence_a is not None
    claim(ledger, "a1", fence_a)
    lock_a.release()
    lock_b = ledger.writer_lock("run")
    fence_b = lock_b.acquire(0)
    assert fence_b is not None and fence_b.term == fence_a.term + 1
    with pytest.raises(Fenced, match="no longer held"):
        claim(ledger, "a2", fence_a, replaces="a1")
    assert [r.token for r in ledger.jobs()] == ["a1"]
    claim(ledger, "b1", fence_b, replaces="a1")
    assert ledger.current_jobs()[(QUEUE, "a")].token == "b1"
    lock_b.release()


def test_the_lease_is_renewed_while_held_and_taken_from_a_dead_holder(
    moto: demo_backend.MotoBatch, shared: str
) -> None:
    """A 1 s lease held for 3 s stays A's (renewed in the background); when A dies without
    releasing, B gets it after watching it unchanged for a lease, and A's fence fails."""
    settings = Settings(state=shared, lease_seconds=1)
    a, b = open_ledger(shared, settings), open_ledger(shared, settings)
    lock_a = a.writer_lock("reconcile")
    fence_a = lock_a.acquire(0)
    started = time.monotonic()
    with pytest.raises(WriterBusy) as busy:
        b.writer_lock("reconcile").acquire(2.5)
    assert time.monotonic() - started >= 2.5  # A renewed all along (1 s lease)
    assert busy.value.holder is not None and busy.value.holder.purpose == "reconcile"
    assert "a writer that died is replaced after 1s" in str(busy.value)
    keeper = lock_a._keeper  # type: ignore[attr-defined]
    keeper.stop()  # A dies: no more renewals, no release
    lock_b = b.writer_lock("reconcile")
    fence_b = lock_b.acquire(10)
    assert fence_b is not None and fence_a is not None and fence_b.term == fence_a.term + 1
    with pytest.raises(Fenced):
        claim(a, "late", fence_a)
    assert a.jobs() == []
    lock_b.release()


def test_a_pass_reads_by_query_only_and_not_by_history(
    moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path, shared: str
) -> None:
    """A pass on the shared store never Scans; the calls of a steady pass do not grow with
    history (three generations of runs) nor with the number of jobs (only the items its
    Queries return do), and statuses AWS returned unchanged are not written again."""
    demo_backend.set_mode("queued")  # jobs stay active: every pass reads their status

    def calls_of_a_steady_pass(jobs: int, generations: int) -> tuple[Counter[str], int]:
        moto.reset()
        moto.create_queues([QUEUE])
        table = f"ledger-{jobs}-{generations}"
        state = dynamodb_ledger_location(moto, pytest.MonkeyPatch(), table)
        settings = Settings(repo=str(repo.path), state=state, workdir=tmp_path / "cache")
        controller: Controller = make_controller(settings)
        repo.write("defs/w.json", WORKER)
        for generation in range(generations):
            for n in range(jobs):
                repo.write(
                    f"jobs/j{n}.json",
                    {
                        "jobName": f"j{n}",
                        "jobQueue": QUEUE,
                        "jobDefinition": "w",
                        "parameters": {"generation": str(generation)},
                    },
                )
            repo.commit(f"generation {generation}")
            assert controller.reconcile().result == "ok"
        assert isinstance(controller.ledger, DynamoLedger)
        calls: Counter[str] = Counter()
        items = Counter[str]()

        def count(event_name: str = "", **_: Any) -> None:
            calls[event_name.rsplit(".", 1)[-1]] += 1

        def returned(http_response: Any = None, parsed: Any = None, **_: Any) -> None:
            items["items"] += len((parsed or {}).get("Items", []))

        assert controller.reconcile().result == "ok"  # reads the last generation's statuses
        events = controller.ledger.db.client.meta.events
        events.register("before-call.dynamodb.*", count)
        events.register("after-call.dynamodb.Query", returned)
        assert controller.reconcile().result == "ok"
        return calls, items["items"]

    small, small_items = calls_of_a_steady_pass(10, 1)
    deep, deep_items = calls_of_a_steady_pass(10, 3)
    wide, wide_items = calls_of_a_steady_pass(40, 1)
    reads = ("Query", "GetItem", "BatchGetItem", "Scan")
    line = (
        "test_a_pass_reads_by_query_only_and_not_by_history: DynamoDB calls of a steady pass "
        + "; ".join(
            f"{label}: {dict(sorted(c.items()))}, items read by Query {n}"
            for label, c, n in (
                ("10 jobs", small, small_items),
                ("10 jobs x3 generations", deep, deep_items),
                ("40 jobs", wide, wide_items),
            )
        )
    )
    NUMBERS.append(line)
    print(line)
    assert all(c["Scan"] == 0 for c in (small, deep, wide))
    assert {op: deep[op] for op in reads} == {op: small[op] for op in reads}  # not history
    assert deep_items == small_items
    assert {op: wide[op] for op in reads} == {op: small[op] for op in reads}  # not the jobs
    # no write for statuses AWS returned unchanged: only the pass row's end
    assert wide["UpdateItem"] == small["UpdateItem"] == 1


def test_migrate_copies_a_ledger_file_into_an_empty_table(
    controller: Controller,
    repo: GitRepo,
    moto: demo_backend.MotoBatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ledger migrate --to dynamodb://T` copies every record and verifies the counts; the
    copy plans nothing new; a second migrate into the same (now full) table is refused."""
    store_controller = controller
    repo.write("defs/w.json", WORKER)
    for n in range(5):
        repo.write(f"jobs/j{n}.json", {"jobName": f"j{n}", "jobQueue": QUEUE, "jobDefinition": "w"})
    repo.commit("five")
    assert store_controller.reconcile().result == "ok"
    target = dynamodb_ledger_location(moto, monkeypatch, "migrated")
    state = str(store_controller.settings.state)
    result = CliRunner().invoke(
        main, ["ledger", "migrate", "--state", state, "--to", target, "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["jobs"], counts["definitions"], counts["actions"]) == (5, 1, 6)
    copied = make_controller(store_controller.settings.model_copy(update={"state": target}))
    assert copied.ledger.current_jobs() == store_controller.ledger.current_jobs()
    again = copied.reconcile()
    assert again.result == "ok" and again.results == []
    refused = CliRunner().invoke(main, ["ledger", "migrate", "--state", state, "--to", target])
    assert refused.exit_code == 1 and "already holds records" in refused.output


def test_create_table_is_idempotent_and_refuses_a_foreign_table(
    moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create-table creates the table with the layout's keys and indexes, says 'exists'
    the second time, and refuses a table with other keys; a missing table or a bad URL
    is one line naming what to do."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint)
    runner = CliRunner()
    first = runner.invoke(main, ["ledger", "create-table", "dynamodb://fresh-ledger"])
    assert first.exit_code == 0 and "created" in first.output, first.output
    second = runner.invoke(main, ["ledger", "create-table", "dynamodb://fresh-ledger"])
    assert second.exit_code == 0 and "exists already" in second.output
    described = moto.client("dynamodb").describe_table(TableName="fresh-ledger")["Table"]
    wanted = table_definition("fresh-ledger")
    assert described["KeySchema"] == wanted["KeySchema"]
    assert sorted(i["IndexName"] for i in described["GlobalSecondaryIndexes"]) == sorted(
        i["IndexName"] for i in wanted["GlobalSecondaryIndexes"]
    )
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    moto.client("dynamodb").create_table(
        TableName="not-a-ledger",
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    foreign = runner.invoke(main, ["ledger", "create-table", "dynamodb://not-a-ledger"])
    assert foreign.exit_code == 1 and "other keys or indexes" in foreign.output
    with pytest.raises(LedgerError, match="not a batch-gitops ledger"):
        open_ledger("dynamodb://not-a-ledger")
    with pytest.raises(LedgerError, match="create-table dynamodb://missing-table"):
        open_ledger("dynamodb://missing-table")
    status = runner.invoke(main, ["status", "--offline", "--state", "dynamodb://missing-table"])
    assert status.exit_code == 1 and "create-table" in status.output
    assert "Traceback" not in status.output
    bad = runner.invoke(main, ["ledger", "create-table", "dynamodb://x"])
    assert bad.exit_code == 2 and "3-255 letters" in bad.output


def test_replicas_on_a_ledger_file_are_refused_at_start(
    repo: GitRepo, tmp_path: Path, moto: demo_backend.MotoBatch
) -> None:
    """`run` with a lease table and a ledger file exits 1 with one line saying replicas
    need a shared ledger (each would keep a history of its own)."""
    repo.write("jobs/a.json", {"jobName": "a", "jobQueue": QUEUE, "jobDefinition": "w"})
    repo.commit("a")
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--repo",
            str(repo.path),
            "--state",
            str(tmp_path / "own.sqlite"),
            "--listen",
            "127.0.0.1:0",
        ],
        env={"BATCH_GITOPS_LEASE_TABLE": "batch-gitops-lease"},
    )
    assert result.exit_code == 1
    assert "replicas need a shared ledger: --state dynamodb://TABLE" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_reconcile_and_prune_wait_for_the_lease(
    moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path, shared: str
) -> None:
    """While a replica holds the shared ledger's lease, `reconcile` and `ledger prune` exit
    1 naming it (host, pid, what it runs) and write nothing; released, both run."""
    repo.write("defs/w.json", WORKER)
    repo.write("jobs/a.json", {"jobName": "a", "jobQueue": QUEUE, "jobDefinition": "w"})
    repo.commit("a")
    ledger = open_ledger(shared)
    daemon = ledger.writer_lock("run")
    daemon.acquire(0)
    runner = CliRunner()
    reconcile = ["reconcile", "--repo", str(repo.path), "--state", shared]
    prune = ["ledger", "prune", "--older-than", "90d", "--state", shared]
    for command in (reconcile, prune):
        busy = runner.invoke(main, command, env={"BATCH_GITOPS_WORKDIR": str(tmp_path / "c")})
        assert busy.exit_code == 1, busy.output
        assert "another writer holds the ledger's lease" in busy.output
        assert f"pid {os.getpid()}" in busy.output and "`run`" in busy.output
    assert ledger.jobs() == []
    daemon.release()
    done = runner.invoke(main, reconcile, env={"BATCH_GITOPS_WORKDIR": str(tmp_path / "c")})
    assert done.exit_code == 0, done.output
    assert [r.name for r in ledger.jobs()] == ["a"]
    pruned = runner.invoke(main, prune)
    assert pruned.exit_code == 0 and "deleted 0 job records" in pruned.output
