"""The adaptive rate of each Batch operation: lowered by AWS's throttling, raised again
by sustained success, never above its ceiling; throttled SubmitJobs sent again, never
failures, and visible in the metrics.

The limiter's rules are checked on a virtual clock (counts, never wall time); the
adapter's behaviour end to end through the benchmark's AWS-like throttling endpoint
(the fault proxy with a token bucket per operation) in front of moto.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bench.throttling import AccountBuckets
from controller.aws.batch import Boto3Batch, RateLimiter
from controller.demo import backend as demo_backend
from controller.settings import Settings
from controller.state.sqlite import SqliteLedger
from tests.conftest import Controller, GitRepo
from tests.reliability.conftest import managed_jobs, write_jobs
from tests.support.fault_proxy import FaultProxy


class VirtualClock:
    """time.monotonic and time.sleep for a limiter, without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def limiter(ceiling: float = 50.0, **options: Any) -> tuple[RateLimiter, VirtualClock]:
    clock = VirtualClock()
    return RateLimiter(ceiling, clock=clock, sleep=clock.sleep, **options), clock


def test_one_throttle_lowers_the_rate_once_per_window() -> None:
    """A 429 cuts the rate by the decrease factor; 429s of requests sent before that cut
    (the same congestion, seen late) do not cut again; a 429 of a request sent after it
    cuts once more."""
    rates, _ = limiter(50.0, decrease=0.9)
    early = [rates.acquire() for _ in range(5)]
    assert rates.rate == 50.0
    assert rates.throttled(early[0]) is True
    assert rates.rate == pytest.approx(45.0)
    assert [rates.throttled(t) for t in early[1:]] == [False] * 4
    assert rates.rate == pytest.approx(45.0)
    later = rates.acquire()
    assert rates.throttled(later) is True
    assert rates.rate == pytest.approx(40.5)
    assert (rates.throttles, rates.decreases) == (6, 2)


def test_sustained_success_raises_the_rate_back_to_the_ceiling_and_never_above() -> None:
    """After a cut, each success adds increase/rate: about +1/s per second's worth of
    successes; 200 successes bring 40.5/s back to 45.0/s and beyond, 2,000 to exactly
    the ceiling, which more successes never pass."""
    rates, _ = limiter(50.0, decrease=0.9, increase=1.0)
    rates.throttled(rates.acquire())
    rates.throttled(rates.acquire())
    assert rates.rate == pytest.approx(40.5)
    for _ in range(200):
        rates.succeeded()
    assert 45.0 <= rates.rate < 50.0
    for _ in range(2000):
        rates.succeeded()
    assert rates.rate == 50.0


def test_the_rate_never_falls_below_its_floor() -> None:
    """However many windows are throttled, the rate stays at the floor (1/s), not 0."""
    rates, _ = limiter(50.0)
    for _ in range(200):
        rates.throttled(rates.acquire())
    assert rates.rate == 1.0


def test_fixed_rate_never_adapts() -> None:
    """rate_control=fixed: throttles are counted, the rate stays at the ceiling."""
    rates, _ = limiter(20.0, adaptive=False)
    for _ in range(10):
        assert rates.throttled(rates.acquire()) is False
        rates.succeeded()
    assert (rates.rate, rates.throttles, rates.decreases) == (20.0, 10, 0)


def test_tokens_are_paced_at_the_current_rate() -> None:
    """On the virtual clock: 5 tokens of burst at 50/s, then one every 20 ms; after a cut
    to 25/s, one every 40 ms."""
    rates, clock = limiter(50.0, decrease=0.5)
    for _ in range(5):
        rates.acquire()
    assert clock.now == 0.0
    for _ in range(50):
        rates.acquire()
    assert clock.now == pytest.approx(1.0)
    rates.throttled(rates.acquire())
    assert rates.rate == 25.0
    started = clock.now
    for _ in range(25):
        rates.acquire()
    assert clock.now - started == pytest.approx(1.0, rel=0.05)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def throttling(
    moto: demo_backend.MotoBatch, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    """AWS-like throttling: SubmitJob 15/s with a burst of 3, other operations 50/s."""
    proxy = FaultProxy(moto.endpoint)
    proxy.rule = AccountBuckets({"SubmitJob": 15.0}, burst_seconds=0.2)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", proxy.endpoint)
    yield proxy
    proxy.stop()


def controller_through(
    repo: GitRepo, tmp_path: Path, rate_control: str = "aimd"
) -> tuple[Controller, Boto3Batch]:
    settings = Settings(
        repo=str(repo.path),
        state=tmp_path / "ledger.sqlite",
        workdir=tmp_path / "cache",
        rate_control=rate_control,
    )
    api = Boto3Batch.from_settings(settings)
    return Controller(settings, api, SqliteLedger(settings.state)), api


def test_throttled_submits_are_sent_again_never_failed_and_lower_only_submitjob(
    throttling: FaultProxy, repo: GitRepo, tmp_path: Path, batch: Any
) -> None:
    """Default settings (ceiling 50/s) against an endpoint allowing SubmitJob 15/s: the
    pass is ok with all 40 jobs submitted exactly once; the endpoint throttled some
    SubmitJobs and every one of those is counted as a throttled attempt, none as a failed
    call; SubmitJob's rate went down (and stayed within floor..ceiling) while the read
    operations kept their own untouched budgets."""
    expected = write_jobs(repo, 40)
    repo.commit("40 jobs")
    controller, api = controller_through(repo, tmp_path)
    assert controller.settings.rate_limit == 50.0
    throttled_before = metric(
        "batch_gitops_aws_request_errors_total",
        operation="SubmitJob",
        code="TooManyRequestsException",
    )
    failed_before = metric("batch_gitops_aws_throttles_total", operation="SubmitJob")
    cuts_before = metric("batch_gitops_aws_rate_decreases_total", operation="SubmitJob")

    result = controller.reconcile()

    assert result.result == "ok", result.message
    assert result.counts().get("submit_ok") == 40
    throttled = throttling.count("SubmitJob", fault="throttle")
    assert throttled > 0  # the endpoint really pushed back
    assert throttling.reached_aws("SubmitJob") == 40
    found = managed_jobs(batch)
    assert set(found) == expected and set(found.values()) == {1}
    submit = api.limiters["SubmitJob"]
    assert submit.throttles == throttled
    assert 1 <= submit.decreases <= throttled
    assert 1.0 <= submit.rate < 50.0
    for operation, other in api.limiters.items():
        if operation != "SubmitJob":
            assert (other.rate, other.decreases) == (50.0, 0), operation
    assert (
        metric(
            "batch_gitops_aws_request_errors_total",
            operation="SubmitJob",
            code="TooManyRequestsException",
        )
        - throttled_before
        == throttled
    )
    assert metric("batch_gitops_aws_throttles_total", operation="SubmitJob") == failed_before
    assert (
        metric("batch_gitops_aws_rate_decreases_total", operation="SubmitJob") - cuts_before
        == submit.decreases
    )
    assert metric("batch_gitops_aws_rate_limit_per_second", operation="SubmitJob") == (
        pytest.approx(submit.rate)
    )


def test_botocore_mode_puts_botocores_adaptive_limiter_on_the_submit_client(
    throttling: FaultProxy, repo: GitRepo, tmp_path: Path, batch: Any
) -> None:
    """rate_control=botocore: our limiters stay fixed at the ceiling, botocore's adaptive
    client-side limiter paces SubmitJob instead, and throttled submits are still sent
    again: 20 jobs, each exactly once, no failed call."""
    expected = write_jobs(repo, 20)
    repo.commit("20 jobs")
    controller, api = controller_through(repo, tmp_path, rate_control="botocore")
    assert api.submit_client.meta.config.retries["mode"] == "adaptive"
    result = controller.reconcile()
    assert result.result == "ok", result.message
    found = managed_jobs(batch)
    assert set(found) == expected and set(found.values()) == {1}
    assert throttling.reached_aws("SubmitJob") == 20
    assert all(lim.rate == 50.0 and lim.decreases == 0 for lim in api.limiters.values())
