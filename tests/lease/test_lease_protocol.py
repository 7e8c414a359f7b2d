"""The lease protocol against moto's DynamoDB over HTTP: conditional writes decide who
leads; a standby waits a full lease of its own clock on an unchanged version."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from controller.aws.batch import Boto3Batch
from controller.aws.lease import Lease, LeaseError, LeaseLost, guard_writes
from tests.lease.conftest import Clock


def test_first_replica_leads_second_waits(make_lease: Any) -> None:
    """On an empty table the first try wins; the second replica sees who holds it."""
    a, b = make_lease("a"), make_lease("b")
    assert a.try_acquire() and a.held()
    assert not b.try_acquire() and not b.held()
    assert b.current_holder == "a"
    assert a.read() is not None and a.read()["holder"] == "a"


def test_simultaneous_candidates_elect_exactly_one(make_lease: Any) -> None:
    """Eight replicas racing on an empty table: the conditional put lets one win."""
    leases = [make_lease(f"r{i}") for i in range(8)]
    barrier = threading.Barrier(len(leases))
    won: list[bool] = [False] * len(leases)

    def race(i: int) -> None:
        barrier.wait()
        won[i] = leases[i].try_acquire()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(leases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum(won) == 1
    winner = leases[won.index(True)]
    assert winner.read()["holder"] == winner.holder


def test_standby_takes_over_only_after_a_silent_lease(make_lease: Any) -> None:
    """The standby's wait counts on its own clock from when it first saw the version; the
    silent leader's validity runs out before that; its next renewal fails."""
    clock_a, clock_b = Clock(), Clock()
    a = make_lease("a", seconds=10, clock=clock_a)
    b = make_lease("b", seconds=10, clock=clock_b)
    assert a.try_acquire()
    assert not b.try_acquire()  # b starts watching this version
    for _ in range(5):  # a renews: b never gets it, whatever b's clock says
        clock_a.advance(2.5)
        clock_b.advance(2.5)
        assert a.try_acquire()
        assert not b.try_acquire()
    # a goes silent (frozen or dead); both clocks run on
    clock_a.advance(8.0)
    clock_b.advance(8.0)
    assert not a.held()  # a stopped trusting its lease (10 s minus the safety margin)
    assert not b.try_acquire()  # b has watched this version for 8 s only
    clock_a.advance(2.0)
    clock_b.advance(2.0)
    assert b.try_acquire() and b.held() and b.term == 1
    assert not a.try_acquire()  # a's conditional renewal fails: it lost
    assert a.current_holder == "b"
    with pytest.raises(LeaseLost, match="holder: b"):
        a.check()


def test_release_hands_over_at_the_next_poll(make_lease: Any) -> None:
    """A clean shutdown releases the lease; the standby takes it without waiting."""
    a, b = make_lease("a"), make_lease("b")
    assert a.try_acquire()
    assert not b.try_acquire()
    a.release()
    assert not a.held()
    assert b.try_acquire()
    assert not a.try_acquire()


def test_a_replica_recovers_its_own_lease_after_a_lost_reply(make_lease: Any) -> None:
    """If a renewal landed but its reply was lost, the holder finds its own name in the
    table and continues, instead of waiting for itself to expire."""
    a = make_lease("a")
    assert a.try_acquire()
    a._write("a", "attribute_exists(#n)", {})  # a renewal whose reply never arrived
    assert a.try_acquire() and a.held()


def test_missing_table_is_a_clear_configuration_error(dynamodb: Any) -> None:
    """A wrong table name says which table and what to do."""
    lease = Lease("no-such-table", "main", "a", 10, client=dynamodb)
    with pytest.raises(LeaseError, match="'no-such-table' does not exist"):
        lease.try_acquire()


def test_writes_are_refused_without_the_lease_reads_are_not(make_lease: Any, batch: Any) -> None:
    """The guard sits in botocore's before-send hook: with the lease gone, SubmitJob raises
    LeaseLost and nothing reaches AWS; DescribeJobs still works."""
    clock = Clock()
    lease = make_lease("a", seconds=4, clock=clock)
    api = Boto3Batch(rate_limit=1000, max_attempts=1)
    guard_writes(api, lease)
    request = {"jobName": "guarded", "jobQueue": "test-queue", "jobDefinition": "d"}
    batch.register_job_definition(
        jobDefinitionName="d",
        type="container",
        containerProperties={"image": "x", "vcpus": 1, "memory": 128},
    )
    with pytest.raises(LeaseLost):
        api.submit_job(request)  # never acquired
    assert lease.try_acquire()
    first = api.submit_job(request)
    clock.advance(4)  # validity is over
    with pytest.raises(LeaseLost):
        api.submit_job(request)
    assert api.describe_jobs([first])[0]["jobId"] == first
    listed = batch.list_jobs(
        jobQueue="test-queue", filters=[{"name": "JOB_NAME", "values": ["guarded"]}]
    )["jobSummaryList"]
    assert [j["jobId"] for j in listed] == [first]


def test_two_replicas_with_the_same_holder_id_do_not_both_lead(make_lease: Any) -> None:
    """A copy-pasted BATCH_GITOPS_HOLDER_ID: the second process sees its own name on a
    version it never wrote and waits like any standby instead of adopting the lease."""
    first, twin = make_lease("same"), make_lease("same")
    assert first.try_acquire()
    assert not twin.try_acquire() and not twin.held()
    assert first.try_acquire() and first.held()
