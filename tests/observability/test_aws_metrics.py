"""AWS API metrics count what really happened on the wire: every attempt, every error code,
throttles that botocore retried away and those that it could not.

AWS throttling is an HTTP 429 with ``TooManyRequestsException``; moto never sends one, so
the fault proxy on 127.0.0.1 answers the first requests with exactly that and forwards
the rest to the moto server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from controller.aws.batch import Boto3Batch, Rejected, Transient
from controller.demo import backend as demo_backend
from tests.support.fault_proxy import FaultProxy, first
from tests.support.manifests import definition, job


@pytest.fixture
def front(proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The fault proxy as the Batch endpoint of every adapter the test builds."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", proxy.endpoint)
    yield proxy


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot(operation: str, code: str) -> dict[str, float]:
    return {
        "requests": value("batch_gitops_aws_requests_total", operation=operation),
        "request_errors": value(
            "batch_gitops_aws_request_errors_total", operation=operation, code=code
        ),
        "errors": value("batch_gitops_aws_errors_total", operation=operation, code=code),
        "throttles": value("batch_gitops_aws_throttles_total", operation=operation),
    }


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in before}


def test_throttles_retried_away_are_counted_per_attempt(front: FaultProxy) -> None:
    """Two 429s then success: three requests, two throttled attempts by operation and code,
    and no failed call — the early warning the throttling alert is built on."""
    api = Boto3Batch(rate_limit=1000, max_attempts=5, retry_mode="standard")
    before = snapshot("ListJobs", "TooManyRequestsException")
    front.rule = first(2, "throttle")
    assert api.list_jobs("test-queue") == []
    assert delta(before, snapshot("ListJobs", "TooManyRequestsException")) == {
        "requests": 3,
        "request_errors": 2,
        "errors": 0,
        "throttles": 0,
    }
    # The metric is what the wire saw: three requests, two of them answered 429.
    assert (front.count("ListJobs"), front.count("ListJobs", fault="throttle")) == (3, 2)


def test_throttled_call_that_gives_up_counts_as_throttled_error(front: FaultProxy) -> None:
    """When every attempt is throttled the call fails as Transient and is counted once as a
    throttled, failed call, besides each throttled attempt."""
    api = Boto3Batch(rate_limit=1000, max_attempts=2, retry_mode="standard")
    before = snapshot("DescribeJobs", "TooManyRequestsException")
    front.rule = first(10, "throttle")
    with pytest.raises(Transient):
        api.describe_jobs(["some-id"])
    assert delta(before, snapshot("DescribeJobs", "TooManyRequestsException")) == {
        "requests": 2,
        "request_errors": 2,
        "errors": 1,
        "throttles": 1,
    }
    assert (front.count("DescribeJobs"), front.count("DescribeJobs", fault="throttle")) == (2, 2)


def test_rejected_call_is_counted_by_its_aws_error_code(front: FaultProxy) -> None:
    """A SubmitJob to a queue that does not exist: one attempt, counted under moto's real
    error code for it, both as an attempt and as a failed call; no throttle."""
    api = Boto3Batch(rate_limit=1000)
    before = snapshot("SubmitJob", "ClientException")
    throttles = value("batch_gitops_aws_throttles_total", operation="SubmitJob")
    with pytest.raises(Rejected):
        api.submit_job(job("x", "no-such-queue", "nope"))
    changed = delta(before, snapshot("SubmitJob", "ClientException"))
    assert changed == {"requests": 1, "request_errors": 1, "errors": 1, "throttles": 0}
    assert front.reached_aws("SubmitJob") == 1  # moto itself refused it
    assert value("batch_gitops_aws_throttles_total", operation="SubmitJob") == throttles


def test_submit_throttled_then_accepted_is_not_a_failed_call(
    front: FaultProxy, moto: demo_backend.MotoBatch
) -> None:
    """SubmitJob (never retried by botocore; our loop retries only proven refusals) throttled
    twice then accepted: two throttled attempts, one job, and no failed or throttled call."""
    batch = moto.client()
    batch.register_job_definition(**definition("trainer"))
    api = Boto3Batch(rate_limit=1000)
    api.throttle_delay = 0.05
    before = snapshot("SubmitJob", "TooManyRequestsException")
    front.rule = first(2, "throttle")
    job_id = api.submit_job(job("x"))
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["jobName"] == "x"
    assert delta(before, snapshot("SubmitJob", "TooManyRequestsException")) == {
        "requests": 3,
        "request_errors": 2,
        "errors": 0,
        "throttles": 0,
    }
    assert (front.count("SubmitJob"), front.reached_aws("SubmitJob")) == (3, 1)
