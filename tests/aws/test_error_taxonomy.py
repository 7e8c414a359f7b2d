"""The boto3 adapter over real HTTP: its error taxonomy and DescribeJobs batching.

The adapter talks to the fault proxy in front of moto, which answers 429 or 500, or
drops the connection, before or after moto acted, as AWS can, and counts what reached
moto; the proxy's hook sees each request's body. (Pagination, which moto lacks, is
checked with botocore's Stubber in test_adapter.py.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.aws.batch import Boto3Batch, OutcomeUnknown, Rejected, Transient
from tests.support.aws import job_names
from tests.support.fault_proxy import Fault, FaultProxy, first
from tests.support.manifests import definition, job

SUBMIT = job("a")


@pytest.fixture
def proxied_api(proxy: FaultProxy, batch: Any, monkeypatch: pytest.MonkeyPatch) -> Boto3Batch:
    """An adapter (no botocore retries) talking to moto through the fault proxy; moto
    holds the ``trainer`` definition, so a SubmitJob of ``SUBMIT`` succeeds there."""
    batch.register_job_definition(**definition("trainer"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", proxy.endpoint)
    api = Boto3Batch(rate_limit=1000, max_attempts=1)
    api.throttle_delay = 0.001
    return api


def test_describe_jobs_sends_at_most_100_ids_per_call(
    proxied_api: Boto3Batch, proxy: FaultProxy, batch: Any
) -> None:
    """250 ids reach AWS as three DescribeJobs requests of 100, 100 and 50 ids, in order
    (AWS refuses more than 100; moto would not), and the jobs AWS knows come back."""
    known = [batch.submit_job(**job(f"known-{n}"))["jobId"] for n in range(3)]
    ids = [*known, *(f"unknown-{n}" for n in range(247))]
    sent: list[list[str]] = []

    def record(operation: str, index: int, body: bytes) -> None:
        if operation == "DescribeJobs":
            sent.append(json.loads(body)["jobs"])

    proxy.hook = record
    found = proxied_api.describe_jobs(ids)
    assert [len(chunk) for chunk in sent] == [100, 100, 50]
    assert [job_id for chunk in sent for job_id in chunk] == ids
    assert sorted(j["jobId"] for j in found) == sorted(known)


@pytest.mark.parametrize(
    "fault,expected,code,sent,reached",
    [
        # moto itself refuses a queue that does not exist: AWS said no, for good.
        (None, Rejected, "ClientException", 1, 1),
        # Throttled every time: refused, so retried (6 attempts), then Transient.
        ("throttle", Transient, "TooManyRequestsException", 6, 0),
        # A 5xx after moto created the job: the job may exist, so never sent again.
        ("5xx-after", OutcomeUnknown, "ServerException", 1, 1),
        # The same reply before moto saw it: the client cannot tell the difference.
        ("5xx", OutcomeUnknown, "ServerException", 1, 0),
        # The connection dies with the request sent: unknown as well.
        ("reset", OutcomeUnknown, "", 1, 0),
    ],
)
def test_submit_errors_map_to_our_taxonomy(
    proxied_api: Boto3Batch,
    proxy: FaultProxy,
    batch: Any,
    fault: Fault | None,
    expected: type,
    code: str,
    sent: int,
    reached: int,
) -> None:
    """Each way a SubmitJob can fail over HTTP raises exactly its class of our taxonomy
    with AWS's error code; only a proven refusal (429) is sent again, and a 5xx or a
    dropped connection after the request left is OutcomeUnknown, never a retry."""
    proxy.rule = (lambda op, n: fault if op == "SubmitJob" else None) if fault else None
    request = {**SUBMIT, "jobQueue": "no-such-queue"} if fault is None else SUBMIT
    with pytest.raises(expected) as raised:
        proxied_api.submit_job(request)
    assert type(raised.value) is expected
    assert raised.value.throttled is (fault == "throttle")
    if code:
        assert raised.value.code == code
    assert proxy.count("SubmitJob") == sent
    assert proxy.reached_aws("SubmitJob") == reached
    assert job_names(batch) == (["a"] if reached and fault else [])


@pytest.mark.parametrize("fault", ["throttle", "5xx", "5xx-after", "reset"])
def test_failed_reads_are_transient_never_unknown(
    proxied_api: Boto3Batch, proxy: FaultProxy, fault: Fault
) -> None:
    """A read that fails (throttled, 5xx, connection reset) is Transient: reading again
    is safe, so it is never OutcomeUnknown whatever happened on the wire."""
    proxy.rule = lambda op, n: fault if op == "ListJobs" else None
    with pytest.raises(Transient) as raised:
        proxied_api.list_jobs("test-queue")
    assert type(raised.value) is Transient
    assert raised.value.throttled is (fault == "throttle")
    assert proxy.count("ListJobs", fault=fault) == 1


def test_throttled_submit_is_retried_because_aws_refused_it(
    proxied_api: Boto3Batch, proxy: FaultProxy, batch: Any
) -> None:
    """A SubmitJob answered 429 never reached AWS, so it is sent again: the second
    attempt creates the job, and its id is what submit_job returns."""
    proxy.rule = first(1, "throttle", "SubmitJob")
    job_id = proxied_api.submit_job(SUBMIT)
    assert proxy.count("SubmitJob") == 2 and proxy.reached_aws("SubmitJob") == 1
    assert [j["jobId"] for j in batch.list_jobs(jobQueue="test-queue")["jobSummaryList"]] == [
        job_id
    ]
