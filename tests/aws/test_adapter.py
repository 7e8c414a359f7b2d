"""The boto3 adapter: pagination, and a Batch endpoint nobody answers on.

moto never paginates, so pagination is checked with botocore's Stubber on a
real client; an unreachable endpoint is a port nothing listens on. DescribeJobs
batching and the error taxonomy go over HTTP, through the fault proxy in front of
moto: tests/aws/test_error_taxonomy.py.
"""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from controller.aws.batch import Boto3Batch, Transient
from tests.support.manifests import job

SUBMIT = job("a")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Boto3Batch:
    """An adapter on 127.0.0.1:9, where nothing listens (a Stubber answers before a send)."""
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


def test_describe_job_definitions_paginates(api: Boto3Batch) -> None:
    """Two pages of ACTIVE revisions of one definition come back as one list, in order."""
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


def test_unreachable_endpoint_is_transient(api: Boto3Batch) -> None:
    """Nothing listens on port 9: connection refused is plain Transient (nothing
    happened, so not OutcomeUnknown) for a read and for a SubmitJob alike."""
    with pytest.raises(Transient) as raised:
        api.describe_jobs(["x"])
    assert type(raised.value) is Transient
    assert raised.value.code == "EndpointConnectionError"
    assert "cannot reach AWS Batch" in str(raised.value)
    with pytest.raises(Transient) as submitted:
        api.submit_job(SUBMIT)
    assert type(submitted.value) is Transient
    assert submitted.value.code == "EndpointConnectionError"
