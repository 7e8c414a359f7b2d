"""The boto3 adapter: pagination, DescribeJobs batching and the error taxonomy.

moto never paginates, so pagination is checked with botocore's Stubber on a
real client; the error mapping is checked against a moto server and Stubber.
"""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from controller.aws.batch import Boto3Batch, OutcomeUnknown, Rejected, Transient


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Boto3Batch:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", "http://127.0.0.1:9")
    api = Boto3Batch(rate_limit=1000, max_attempts=1)
    api.throttle_delay = 0.001
    return api


def _summary(i: int) -> dict:
    return {"jobId": f"id-{i}", "jobName": "n", "jobArn": f"arn:{i}"}


def test_list_jobs_follows_next_token(api: Boto3Batch) -> None:
    """Three pages joined; the JOB_NAME filter is passed on every page."""
    filters = [{"name": "JOB_NAME", "values": ["n"]}]
    with Stubber(api.client) as stub:
        stub.add_response(
            "list_jobs",
            {"jobSummaryList": [_summary(0), _summary(1)], "nextToken": "t1"},
            {"jobQueue": "q", "filters": filters},
        )
        stub.add_response(
            "list_jobs",
            {"jobSummaryList": [_summary(2)], "nextToken": "t2"},
            {"jobQueue": "q", "filters": filters, "nextToken": "t1"},
        )
        stub.add_response(
            "list_jobs",
            {"jobSummaryList": [_summary(3)]},
            {"jobQueue": "q", "filters": filters, "nextToken": "t2"},
        )
        jobs = api.list_jobs("q", name="n")
        stub.assert_no_pending_responses()
    assert [j["jobId"] for j in jobs] == ["id-0", "id-1", "id-2", "id-3"]


def test_describe_jobs_sends_at_most_100_ids_per_call(api: Boto3Batch) -> None:
    ids = [f"id-{i}" for i in range(250)]
    with Stubber(api.client) as stub:
        for start in (0, 100, 200):
            chunk = ids[start : start + 100]
            stub.add_response("describe_jobs", {"jobs": []}, {"jobs": chunk})
        assert api.describe_jobs(ids) == []
        stub.assert_no_pending_responses()


def test_describe_job_definitions_paginates(api: Boto3Batch) -> None:
    definition = {
        "jobDefinitionName": "d",
        "jobDefinitionArn": "arn:1",
        "revision": 1,
        "type": "container",
    }
    with Stubber(api.client) as stub:
        stub.add_response(
            "describe_job_definitions",
            {"jobDefinitions": [definition], "nextToken": "x"},
            {"jobDefinitionName": "d", "status": "ACTIVE"},
        )
        stub.add_response(
            "describe_job_definitions",
            {"jobDefinitions": [{**definition, "revision": 2, "jobDefinitionArn": "arn:2"}]},
            {"jobDefinitionName": "d", "status": "ACTIVE", "nextToken": "x"},
        )
        found = api.describe_job_definitions("d")
    assert [d["revision"] for d in found] == [1, 2]


@pytest.mark.parametrize(
    "status,code,expected",
    [
        (400, "ClientException", Rejected),
        (429, "TooManyRequestsException", Transient),
        (500, "ServerException", OutcomeUnknown),
    ],
)
def test_submit_errors_map_to_our_taxonomy(
    api: Boto3Batch, status: int, code: str, expected: type
) -> None:
    """A 5xx after SubmitJob may have created the job: OutcomeUnknown, not a retry."""
    api.throttle_patience = 0.0  # a throttled submit gives up at once (default: 120 s)
    with Stubber(api.submit_client) as stub:
        for _ in range(6):
            stub.add_client_error("submit_job", service_error_code=code, http_status_code=status)
        with pytest.raises(expected) as raised:
            api.submit_job({"jobName": "a", "jobQueue": "q", "jobDefinition": "d"})
    assert type(raised.value) is expected


def test_throttled_submit_is_retried_because_aws_refused_it(api: Boto3Batch) -> None:
    with Stubber(api.submit_client) as stub:
        stub.add_client_error(
            "submit_job", service_error_code="TooManyRequestsException", http_status_code=429
        )
        stub.add_response("submit_job", {"jobId": "j1", "jobName": "a", "jobArn": "arn"})
        assert api.submit_job({"jobName": "a", "jobQueue": "q", "jobDefinition": "d"}) == "j1"


def test_unreachable_endpoint_is_transient(api: Boto3Batch) -> None:
    """Nothing listens on port 9: connection refused is Transient (nothing happened)."""
    with pytest.raises(Transient) as raised:
        api.describe_jobs(["x"])
    assert not isinstance(raised.value, Rejected)
