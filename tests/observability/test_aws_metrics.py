"""AWS API metrics count what really happened on the wire: every attempt, every error code,
throttles that botocore retried away and those that it could not.

AWS throttling is an HTTP 429 with ``TooManyRequestsException``; moto never sends one, so
a small HTTP front on 127.0.0.1 answers the first requests with exactly that and forwards
the rest to the moto server.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import REGISTRY

from controller.aws.batch import Boto3Batch, Rejected, Transient
from controller.demo import backend as demo_backend


class ThrottlingFront(ThreadingHTTPServer):
    """Answers 429 TooManyRequestsException to the next ``throttle`` requests, then forwards."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.throttle = 0
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ThrottlingFront

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            throttled = self.server.throttle > 0
            self.server.throttle -= 1 if throttled else 0
        if throttled:
            self._reply(
                429,
                json.dumps({"message": "Too Many Requests"}).encode(),
                {"x-amzn-ErrorType": "TooManyRequestsException"},
            )
            return
        request = urllib.request.Request(
            self.server.upstream + self.path,
            data=body,
            method="POST",
            headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                self._reply(reply.status, reply.read(), dict(reply.headers))
        except urllib.error.HTTPError as exc:
            self._reply(exc.code, exc.read(), dict(exc.headers))

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding", "date"):
                self.send_header(key, value)
        self.send_header("Content-Type", headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def front(
    moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThrottlingFront]:
    server = ThrottlingFront(moto.endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", server.endpoint)
    yield server
    server.shutdown()
    server.server_close()


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


def test_throttles_retried_away_are_counted_per_attempt(front: ThrottlingFront) -> None:
    """Two 429s then success: three requests, two throttled attempts by operation and code,
    and no failed call — the early warning the throttling alert is built on."""
    api = Boto3Batch(rate_limit=1000, max_attempts=5, retry_mode="standard")
    before = snapshot("ListJobs", "TooManyRequestsException")
    front.throttle = 2
    assert api.list_jobs("test-queue") == []
    assert delta(before, snapshot("ListJobs", "TooManyRequestsException")) == {
        "requests": 3,
        "request_errors": 2,
        "errors": 0,
        "throttles": 0,
    }


def test_throttled_call_that_gives_up_counts_as_throttled_error(front: ThrottlingFront) -> None:
    """When every attempt is throttled the call fails as Transient and is counted once as a
    throttled, failed call, besides each throttled attempt."""
    api = Boto3Batch(rate_limit=1000, max_attempts=2, retry_mode="standard")
    before = snapshot("DescribeJobs", "TooManyRequestsException")
    front.throttle = 10
    with pytest.raises(Transient):
        api.describe_jobs(["some-id"])
    assert delta(before, snapshot("DescribeJobs", "TooManyRequestsException")) == {
        "requests": 2,
        "request_errors": 2,
        "errors": 1,
        "throttles": 1,
    }


def test_rejected_call_is_counted_by_its_aws_error_code(front: ThrottlingFront) -> None:
    """A SubmitJob to a queue that does not exist: one attempt, counted under moto's real
    error code for it, both as an attempt and as a failed call; no throttle."""
    api = Boto3Batch(rate_limit=1000)
    before = snapshot("SubmitJob", "ClientException")
    throttles = value("batch_gitops_aws_throttles_total", operation="SubmitJob")
    with pytest.raises(Rejected):
        api.submit_job({"jobName": "x", "jobQueue": "no-such-queue", "jobDefinition": "nope"})
    changed = delta(before, snapshot("SubmitJob", "ClientException"))
    assert changed == {"requests": 1, "request_errors": 1, "errors": 1, "throttles": 0}
    assert value("batch_gitops_aws_throttles_total", operation="SubmitJob") == throttles


def test_submit_throttled_then_accepted_is_not_a_failed_call(
    front: ThrottlingFront, moto: demo_backend.MotoBatch
) -> None:
    """SubmitJob (never retried by botocore; our loop retries only proven refusals) throttled
    twice then accepted: two throttled attempts, one job, and no failed or throttled call."""
    batch = moto.client()
    batch.register_job_definition(
        jobDefinitionName="trainer",
        type="container",
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128},
    )
    api = Boto3Batch(rate_limit=1000)
    api.throttle_delay = 0.05
    before = snapshot("SubmitJob", "TooManyRequestsException")
    front.throttle = 2
    job_id = api.submit_job({"jobName": "x", "jobQueue": "test-queue", "jobDefinition": "trainer"})
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["jobName"] == "x"
    assert delta(before, snapshot("SubmitJob", "TooManyRequestsException")) == {
        "requests": 3,
        "request_errors": 2,
        "errors": 0,
        "throttles": 0,
    }
