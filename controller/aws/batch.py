"""The only module that imports boto3: a thin AWS Batch adapter behind a Protocol.

Owns pagination, DescribeJobs batching (100 ids per call), a client-side rate
limit, botocore's retry modes for safe calls, and the mapping of botocore
errors to our own taxonomy:

* :class:`Transient` — throttling, 5xx, connection trouble: try again later.
* :class:`Rejected` — AWS said no to this request (validation, missing queue):
  retrying the same request will not help.
* :class:`OutcomeUnknown` — a SubmitJob was sent but its reply was lost; the
  job may exist. Never resubmit blindly: settle through the submission tag.

SubmitJob runs on a client with botocore retries off, because a retried submit
after a lost reply creates a duplicate; throttling (which proves the request
was refused) is retried here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
import botocore.config
import botocore.exceptions

from controller import metrics

DESCRIBE_BATCH = 100
# Batch operations that change something (the rest only read): what the lease guards,
# and what "0 writes on an unchanged pass" counts.
WRITE_OPERATIONS = frozenset(
    {
        "SubmitJob",
        "RegisterJobDefinition",
        "DeregisterJobDefinition",
        "CancelJob",
        "TerminateJob",
        "TagResource",
        "UntagResource",
    }
)
THROTTLE_CODES = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
}


class BatchError(Exception):
    """Base of every error the adapter raises."""

    # Set by the classifier on throttling (a code in THROTTLE_CODES or HTTP 429).
    throttled: bool = False

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class Transient(BatchError):
    """Throttled, 5xx or network: the same call may succeed later."""


class Rejected(BatchError):
    """AWS refused the request; it will refuse it again."""


class OutcomeUnknown(Transient):
    """A write was sent and its reply lost: it may or may not have happened."""


@dataclass(frozen=True)
class Registered:
    arn: str
    name: str
    revision: int


class BatchApi(Protocol):
    """What the controller needs from AWS Batch; fakes implement this for pure tests."""

    def register_job_definition(self, request: dict[str, Any]) -> Registered: ...

    def deregister_job_definition(self, arn: str) -> None: ...

    def submit_job(self, request: dict[str, Any]) -> str: ...

    def describe_jobs(self, job_ids: list[str]) -> list[dict[str, Any]]: ...

    def list_jobs(
        self, queue: str, *, name: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]: ...

    def cancel_job(self, job_id: str, reason: str) -> None: ...

    def terminate_job(self, job_id: str, reason: str) -> None: ...

    def describe_job_definitions(
        self, name: str | None = None, status: str | None = "ACTIVE"
    ) -> list[dict[str, Any]]: ...


class RateLimiter:
    """Token bucket shared by every HTTP attempt the clients make."""

    def __init__(self, per_second: float, burst: float | None = None) -> None:
        self.rate = max(per_second, 0.001)
        # A small burst (a tenth of a second's worth): any one-second window then stays
        # within 1.1 x the rate, so a limit set just under AWS's 50/s is never exceeded
        # by much even right after an idle spell.
        self.capacity = burst if burst is not None else max(1.0, per_second / 10)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


def count_failed_call(operation: str, error: BatchError) -> None:
    """A call that failed for good (after every retry): by code, and as a throttle."""
    metrics.AWS_ERRORS.labels(operation=operation, code=error.code or "Unknown").inc()
    if error.throttled:
        metrics.AWS_THROTTLES.labels(operation=operation).inc()


def _classify(
    operation: str, exc: Exception, *, sent_write: bool = False, count: bool = True
) -> BatchError:
    error = _map_error(operation, exc, sent_write=sent_write)
    if count:
        count_failed_call(operation, error)
    return error


def _map_error(operation: str, exc: Exception, *, sent_write: bool) -> BatchError:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", str(exc)))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in THROTTLE_CODES or status == 429:
            throttled = Transient(f"{operation} throttled: {message}", code)
            throttled.throttled = True
            return throttled
        if status >= 500:
            cls = OutcomeUnknown if sent_write else Transient
            return cls(f"{operation} failed on the server ({status}): {message}", code)
        return Rejected(f"{operation} rejected: {message}", code)
    code = type(exc).__name__
    if isinstance(
        exc, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.EndpointConnectionError
    ):
        # The request never reached AWS: nothing happened.
        return Transient(f"{operation}: cannot reach AWS Batch: {exc}", code)
    if isinstance(exc, botocore.exceptions.BotoCoreError | OSError):
        cls = OutcomeUnknown if sent_write else Transient
        return cls(f"{operation}: {exc}", code)
    raise exc


class Boto3Batch:
    """BatchApi over boto3. Endpoint, region and credentials come from boto3's config."""

    # First back-off after a throttled SubmitJob; doubles up to 5 s.
    throttle_delay = 0.2

    def __init__(
        self,
        *,
        rate_limit: float = 20.0,
        max_attempts: int = 5,
        retry_mode: str = "adaptive",
        pool_size: int = 16,
        session: boto3.session.Session | None = None,
        read_timeout: float = 30.0,
    ) -> None:
        try:
            session = session or boto3.session.Session()
        except botocore.exceptions.ProfileNotFound as exc:
            raise BatchError(f"AWS_PROFILE: {exc}", "ProfileNotFound") from exc
        self.limiter = RateLimiter(rate_limit)
        common: dict[str, Any] = {
            "max_pool_connections": pool_size,
            "connect_timeout": 5,
            "read_timeout": read_timeout,
            "tcp_keepalive": True,
            "user_agent_extra": "batch-gitops",
        }
        safe = botocore.config.Config(
            retries={"mode": retry_mode, "total_max_attempts": max_attempts}, **common
        )
        once = botocore.config.Config(retries={"total_max_attempts": 1}, **common)
        try:
            self.client = session.client("batch", config=safe)
            self.submit_client = session.client("batch", config=once)
        except botocore.exceptions.NoRegionError as exc:
            raise BatchError(
                "no AWS region configured: set AWS_DEFAULT_REGION (botocore does not read "
                "AWS_REGION) or a profile with a region (AWS_PROFILE)",
                "NoRegionError",
            ) from exc
        except botocore.exceptions.ProfileNotFound as exc:
            raise BatchError(f"AWS_PROFILE: {exc}", "ProfileNotFound") from exc
        except ValueError as exc:  # botocore: "Invalid endpoint: 127.0.0.1:5055"
            raise BatchError(
                f"AWS_ENDPOINT_URL_BATCH (or AWS_ENDPOINT_URL): {exc}; an endpoint is a URL "
                "with its scheme, e.g. http://127.0.0.1:5055",
                "InvalidEndpoint",
            ) from exc
        for client in (self.client, self.submit_client):
            client.meta.events.register("before-send.batch.*", self._before_send)
            client.meta.events.register("response-received.batch.*", self._after_response)

    def _before_send(self, event_name: str = "", **_: Any) -> None:
        # Every HTTP attempt, retries included, waits for a token and is counted.
        self.limiter.acquire()
        metrics.AWS_REQUESTS.labels(operation=event_name.rsplit(".", 1)[-1]).inc()

    def _after_response(
        self,
        event_name: str = "",
        parsed_response: dict[str, Any] | None = None,
        exception: Exception | None = None,
        **_: Any,
    ) -> None:
        # Every HTTP attempt's error, including those botocore retried away: sustained
        # throttling shows here long before a call finally fails.
        code = ""
        if exception is not None:
            code = type(exception).__name__
        elif parsed_response is not None and "Error" in parsed_response:
            code = str(parsed_response["Error"].get("Code") or "Unknown")
        if code:
            metrics.AWS_REQUEST_ERRORS.labels(
                operation=event_name.rsplit(".", 1)[-1], code=code
            ).inc()

    def _call(
        self,
        operation: str,
        fn: Callable[..., Any],
        *args: Any,
        write: bool = False,
        count: bool = True,
        **kwargs: Any,
    ) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise _classify(operation, exc, sent_write=write, count=count) from exc
        finally:
            metrics.AWS_CALL_SECONDS.labels(operation=operation).observe(
                time.perf_counter() - started
            )

    # --- writes ---
    def register_job_definition(self, request: dict[str, Any]) -> Registered:
        """One RegisterJobDefinition, not retried by botocore: a retry after a lost reply
        would leave a second revision. ``apply`` settles (adopts by tag) before retrying."""
        reply = self._call(
            "RegisterJobDefinition",
            self.submit_client.register_job_definition,
            write=True,
            **request,
        )
        return Registered(
            reply["jobDefinitionArn"], reply["jobDefinitionName"], int(reply["revision"])
        )

    def deregister_job_definition(self, arn: str) -> None:
        self._call(
            "DeregisterJobDefinition",
            self.client.deregister_job_definition,
            write=True,
            jobDefinition=arn,
        )

    def submit_job(self, request: dict[str, Any]) -> str:
        """One SubmitJob, never retried after it may have reached AWS."""
        delay = self.throttle_delay
        for attempt in range(6):
            try:
                # Failures are counted here, once per call, not per attempt of this loop.
                reply = self._call(
                    "SubmitJob", self.submit_client.submit_job, write=True, count=False, **request
                )
                return str(reply["jobId"])
            except OutcomeUnknown as exc:
                count_failed_call("SubmitJob", exc)
                raise
            except Transient as exc:
                # Throttled or never connected: AWS did not take the request.
                if attempt == 5 or exc.code not in THROTTLE_CODES | {
                    "EndpointConnectionError",
                    "ConnectTimeoutError",
                }:
                    count_failed_call("SubmitJob", exc)
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except BatchError as exc:
                count_failed_call("SubmitJob", exc)
                raise
        raise AssertionError("unreachable")

    def cancel_job(self, job_id: str, reason: str) -> None:
        self._call("CancelJob", self.client.cancel_job, jobId=job_id, reason=reason)

    def terminate_job(self, job_id: str, reason: str) -> None:
        self._call("TerminateJob", self.client.terminate_job, jobId=job_id, reason=reason)

    # --- reads ---
    def describe_jobs(self, job_ids: list[str]) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        for chunk in chunked(job_ids, DESCRIBE_BATCH):
            reply = self._call("DescribeJobs", self.client.describe_jobs, jobs=chunk)
            jobs.extend(reply.get("jobs", []))
        return jobs

    def list_jobs(
        self, queue: str, *, name: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"jobQueue": queue}
        if name is not None:
            kwargs["filters"] = [{"name": "JOB_NAME", "values": [name]}]
        elif status is not None:
            kwargs["jobStatus"] = status
        return list(self._paginate("ListJobs", "list_jobs", "jobSummaryList", **kwargs))

    def describe_job_definitions(
        self, name: str | None = None, status: str | None = "ACTIVE"
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if name is not None:
            kwargs["jobDefinitionName"] = name
        if status is not None:
            kwargs["status"] = status
        return list(
            self._paginate(
                "DescribeJobDefinitions", "describe_job_definitions", "jobDefinitions", **kwargs
            )
        )

    def _paginate(
        self, operation: str, method: str, key: str, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator(method)
        pages = iter(paginator.paginate(**kwargs))
        while True:
            page = self._call(operation, next, pages, None)
            if page is None:
                return
            yield from page.get(key, [])


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
