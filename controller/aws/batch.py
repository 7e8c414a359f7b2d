"""The only module that imports boto3: a thin AWS Batch adapter behind a Protocol.

Owns pagination, DescribeJobs batching (100 ids per call), the client-side
rate of each operation (adaptive: it starts at AWS's documented 50 SubmitJob/s,
drops when AWS throttles and climbs back with sustained success, see
:class:`RateLimiter`), botocore's retry modes for safe calls, and the mapping of
botocore errors to our own taxonomy:

* :class:`Transient` — throttling, 5xx, connection trouble: try again later.
* :class:`Rejected` — AWS said no to this request (validation, missing queue):
  retrying the same request will not help.
* :class:`OutcomeUnknown` — a SubmitJob was sent but its reply was lost; the
  job may exist. Never resubmit blindly: settle through the submission tag.

SubmitJob runs on a client with botocore retries off, because a retried submit
after a lost reply creates a duplicate; throttling (which proves the request
was refused) is retried here, and is never a failure.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import boto3
import botocore.config
import botocore.exceptions

from controller import metrics
from controller.settings import Settings

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
# Never connected: AWS did not see the request, so sending it again cannot duplicate it.
UNSENT_CODES = {"EndpointConnectionError", "ConnectTimeoutError"}

# Rate control (RateLimiter). AWS documents SubmitJob at 50 requests/s per account, a
# fixed quota, and throttles the other Batch APIs too (HTTP 429 TooManyRequestsException).
# "aimd": our per-operation adaptive limiter (the default; docs/performance.md says why);
# "botocore": botocore's adaptive client-side limiter (CUBIC) on SubmitJob's client, our
# limiters fixed at the ceiling; "fixed": every operation at the ceiling, never adapted.
RateControl = Literal["aimd", "botocore", "fixed"]
MIN_RATE = 1.0
# Tuned against bench/throttling.py (AWS-like token buckets at 50/s and at 25/s, bursts
# of a tenth of a second and of a whole one): a gentle cut keeps the average close to
# what AWS allows, a +1/s-per-second climb keeps throttled SubmitJobs at about 2 % of
# those sent (+2/s: the same throughput, 3.2-3.4 % throttled).
RATE_DECREASE = 0.9
RATE_INCREASE = 1.0
# How long one SubmitJob is sent again while AWS keeps throttling it (a 429 proves AWS
# refused it, so a retry cannot duplicate the job), and how often after a connect error.
THROTTLE_PATIENCE = 120.0
UNSENT_ATTEMPTS = 6
MAX_BACKOFF = 2.0


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
    """Token bucket of one Batch operation whose rate follows AWS's answers (AIMD).

    It starts at ``ceiling`` (AWS documents 50 SubmitJob/s per account) and never goes
    above it. A throttled request (HTTP 429) multiplies the rate by ``decrease``; further
    throttles of requests sent *before* that cut are the same congestion seen late and do
    not cut again (each request carries the ticket :meth:`acquire` gave it). Every
    success adds ``increase / rate``, i.e. about ``increase`` requests/s per second of
    sustained success, back up to the ceiling. ``adaptive=False`` keeps the rate fixed.

    The burst is a tenth of a second's worth: any one-second window stays within 1.1 x
    the rate, so a ceiling set just under AWS's limit is never exceeded by much.
    """

    def __init__(
        self,
        ceiling: float,
        *,
        adaptive: bool = True,
        floor: float = MIN_RATE,
        decrease: float = RATE_DECREASE,
        increase: float = RATE_INCREASE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ceiling = max(ceiling, 0.001)
        self.floor = min(floor, self.ceiling)
        self.adaptive = adaptive
        self.decrease = decrease
        self.increase = increase
        self.rate = self.ceiling
        self.capacity = self._capacity()
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        self.issued = 0  # tickets handed out so far
        self.cut_at = 0  # the first ticket sent after the last decrease
        self.throttles = 0
        self.decreases = 0
        self.lock = threading.Lock()

    def _capacity(self) -> float:
        return max(1.0, self.rate / 10)

    def acquire(self) -> int:
        """Wait for a token; returns this request's ticket (for :meth:`throttled`)."""
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1 - 1e-9:  # float dust must not make a waiter spin
                    self.tokens = max(0.0, self.tokens - 1)
                    self.issued += 1
                    return self.issued - 1
                wait = (1 - self.tokens) / self.rate
            self.sleep(wait)

    def succeeded(self) -> None:
        """AWS accepted a request: creep back up toward the ceiling."""
        with self.lock:
            if self.adaptive and self.rate < self.ceiling:
                self._set_rate(min(self.ceiling, self.rate + self.increase / self.rate))

    def throttled(self, ticket: int) -> bool:
        """AWS refused a request with 429; True when this lowered the rate."""
        with self.lock:
            self.throttles += 1
            if not self.adaptive or ticket < self.cut_at:
                return False
            self._set_rate(max(self.floor, self.rate * self.decrease))
            self.tokens = 0.0  # AWS's bucket is empty: do not spend a burst into it
            self.cut_at = self.issued
            self.decreases += 1
            return True

    def _set_rate(self, rate: float) -> None:
        # Tokens accrued so far count at the old rate.
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.rate = rate
        self.capacity = self._capacity()
        self.tokens = min(self.tokens, self.capacity)


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
    """BatchApi over boto3. Endpoint, region and credentials come from boto3's config.

    Every operation has its own :class:`RateLimiter` (AWS throttles each API on its own),
    so a wave of SubmitJobs never starves the DescribeJobs of the next observe, nor the
    other way round. ``rate_limit`` is every limiter's ceiling.
    """

    # First back-off after a throttled SubmitJob (full jitter, doubling up to MAX_BACKOFF).
    throttle_delay = 0.1
    throttle_patience = THROTTLE_PATIENCE

    def __init__(
        self,
        *,
        rate_limit: float = 50.0,
        max_attempts: int = 5,
        retry_mode: str = "adaptive",
        pool_size: int = 16,
        session: boto3.session.Session | None = None,
        read_timeout: float = 30.0,
        rate_control: RateControl = "aimd",
    ) -> None:
        try:
            session = session or boto3.session.Session()
        except botocore.exceptions.ProfileNotFound as exc:
            raise BatchError(f"AWS_PROFILE: {exc}", "ProfileNotFound") from exc
        self.rate_limit = rate_limit
        self.rate_control = rate_control
        self.limiters: dict[str, RateLimiter] = {}
        self._limiters_lock = threading.Lock()
        # The ticket of the request this thread is sending (botocore sends and receives
        # on the calling thread).
        self._sending = threading.local()
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
        # One attempt each (botocore never resends a write). With rate_control="botocore"
        # its adaptive mode only adds its client-side limiter: still a single attempt.
        write_mode = "adaptive" if rate_control == "botocore" else "standard"
        once = botocore.config.Config(
            retries={"mode": write_mode, "total_max_attempts": 1}, **common
        )
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

    @classmethod
    def from_settings(cls, settings: Settings) -> Boto3Batch:
        """The adapter as every command and the daemon build it."""
        return cls(
            rate_limit=settings.rate_limit,
            max_attempts=settings.aws_max_attempts,
            retry_mode=settings.aws_retry_mode,
            pool_size=max(10, settings.concurrency),
            rate_control=settings.rate_control,
        )

    def limiter(self, operation: str) -> RateLimiter:
        """The rate limiter of one operation, made on first use at the ceiling."""
        with self._limiters_lock:
            limiter = self.limiters.get(operation)
            if limiter is None:
                limiter = RateLimiter(self.rate_limit, adaptive=self.rate_control == "aimd")
                self.limiters[operation] = limiter
                metrics.AWS_RATE_LIMIT.labels(operation=operation).set(limiter.rate)
            return limiter

    def _before_send(self, event_name: str = "", **_: Any) -> None:
        # Every HTTP attempt, retries included, waits for a token and is counted.
        operation = event_name.rsplit(".", 1)[-1]
        self._sending.ticket = self.limiter(operation).acquire()
        metrics.AWS_REQUESTS.labels(operation=operation).inc()

    def _after_response(
        self,
        event_name: str = "",
        parsed_response: dict[str, Any] | None = None,
        response_dict: dict[str, Any] | None = None,
        exception: Exception | None = None,
        **_: Any,
    ) -> None:
        # Every HTTP attempt's error, including those botocore retried away: sustained
        # throttling shows here long before a call finally fails.
        operation = event_name.rsplit(".", 1)[-1]
        code = ""
        if exception is not None:
            code = type(exception).__name__
        elif parsed_response is not None and "Error" in parsed_response:
            code = str(parsed_response["Error"].get("Code") or "Unknown")
        if code:
            metrics.AWS_REQUEST_ERRORS.labels(operation=operation, code=code).inc()
        status = int((response_dict or {}).get("status_code") or 0)
        limiter = self.limiter(operation)
        if code in THROTTLE_CODES or status == 429:
            if limiter.throttled(getattr(self._sending, "ticket", 0)):
                metrics.AWS_RATE_DECREASES.labels(operation=operation).inc()
            metrics.AWS_RATE_LIMIT.labels(operation=operation).set(limiter.rate)
        elif exception is None and 0 < status < 400:
            limiter.succeeded()
            metrics.AWS_RATE_LIMIT.labels(operation=operation).set(limiter.rate)

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
        """One SubmitJob, never sent again once it may have reached AWS.

        A throttled attempt (AWS refused it) is sent again, paced by the operation's
        adaptive rate, for up to ``throttle_patience`` seconds: throttling is AWS asking
        us to slow down, not a failure. An attempt that never connected is sent again a
        few times. Failures are counted here, once per call, not per attempt.
        """
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                reply = self._call(
                    "SubmitJob", self.submit_client.submit_job, write=True, count=False, **request
                )
                return str(reply["jobId"])
            except OutcomeUnknown as exc:
                count_failed_call("SubmitJob", exc)
                raise
            except Transient as exc:
                attempt += 1
                patient = time.monotonic() - started < self.throttle_patience
                unsent = exc.code in UNSENT_CODES and attempt < UNSENT_ATTEMPTS
                if not ((exc.throttled and patient) or unsent):
                    count_failed_call("SubmitJob", exc)
                    raise
                # Full jitter: threads throttled together do not come back together.
                time.sleep(random.uniform(0, min(MAX_BACKOFF, self.throttle_delay * 2**attempt)))
            except BatchError as exc:
                count_failed_call("SubmitJob", exc)
                raise

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
