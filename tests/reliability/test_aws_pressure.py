"""AWS under pressure: throttling, 5xx, slow replies and connection resets injected
by the fault proxy; the client-side rate limit as the proxy measures it; and the
per-pass time budget that cuts a huge commit short while progress continues."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from controller.aws.batch import Boto3Batch
from controller.demo import backend as demo_backend
from controller.engine.reconcile import PassResult
from tests.conftest import Controller, GitRepo, make_controller
from tests.reliability.conftest import managed_jobs, write_jobs
from tests.support.controllers import make_settings
from tests.support.fault_proxy import FaultProxy, RandomFaults


def proxied_controller(
    proxy: FaultProxy,
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    **overrides: Any,
) -> Controller:
    """A controller built from Settings exactly as the CLI builds it, through the proxy."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", proxy.endpoint)
    settings = make_settings(repo, tmp_path, **overrides)
    api = Boto3Batch(
        rate_limit=settings.rate_limit,
        max_attempts=settings.aws_max_attempts,
        retry_mode=settings.aws_retry_mode,
        pool_size=max(10, settings.concurrency),
    )
    return make_controller(settings, api)


def converge(controller: Controller, max_passes: int) -> list[PassResult]:
    """Passes until one applies cleanly and leaves nothing to do (bounded)."""
    passes = []
    for _ in range(max_passes):
        result = controller.reconcile()
        passes.append(result)
        idle = result.plan is not None and not result.plan.actions and not result.plan.waiting
        if result.result == "ok" and idle:
            return passes
        if result.settled is not None and result.settled.unknown:
            time.sleep(controller.settings.settle_grace)  # let young intents come of age
    raise AssertionError(
        f"no convergence in {max_passes} passes: {[(p.result, p.counts()) for p in passes]}"
    )


@pytest.mark.slow
def test_300_jobs_converge_exactly_once_with_20_percent_faults(
    moto: demo_backend.MotoBatch,
    proxy: FaultProxy,
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch: Any,
    report: Any,
) -> None:
    """20% of all requests get a 429, a 500 (before or after AWS acted), a slow
    reply, or a connection reset (before or after AWS acted); a 300-job commit
    converges within 8 passes to exactly 300 managed jobs, one per manifest, and
    the request rate the proxy sees never exceeds the limit plus its burst."""
    expected = write_jobs(repo, 300)
    repo.commit("300 jobs")
    proxy.slow_seconds = 0.3
    proxy.rule = RandomFaults(
        rate=0.2,
        kinds=("throttle", "5xx", "5xx-after", "slow", "reset", "drop-after"),
        seed=11,
    )
    rate = 50.0
    controller = proxied_controller(
        proxy, repo, tmp_path, monkeypatch, rate_limit=rate, settle_grace="1s"
    )

    passes = converge(controller, max_passes=8)

    found = managed_jobs(batch)
    faults = proxy.faults()
    busiest = proxy.max_requests_in_window(1.0, operation="SubmitJob")
    report(
        f"passes={len(passes)} requests={len(proxy.seen)} faults injected={sum(faults.values())} "
        f"{dict(sorted(faults.items()))} SubmitJob sent={proxy.count('SubmitJob')} "
        f"reached AWS={proxy.reached_aws('SubmitJob')} jobs expected={len(expected)} "
        f"found={sum(found.values())} distinct={len(found)} "
        f"busiest 1s window={busiest} SubmitJob (limit {rate:g}/s + burst {rate / 10:g})"
    )
    assert sum(faults.values()) >= 0.15 * len(proxy.seen)  # the faults really happened
    assert set(found) == expected
    assert sum(found.values()) == 300
    assert proxy.reached_aws("SubmitJob") == 300  # adopted by tag, never submitted twice
    # Limit + burst (a tenth of a second), plus up to 200 ms of arrival jitter between
    # the limiter and the proxy (a loaded 2-core machine bunches requests in transit);
    # an unlimited client sends several times this through moto.
    assert busiest <= rate * 1.1 + max(1, rate * 0.2)
    assert controller.ledger.open_intents() == []


def test_rate_limiter_bounds_the_request_rate_aws_sees(
    moto: demo_backend.MotoBatch,
    proxy: FaultProxy,
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: Any,
) -> None:
    """With the default ceiling (50/s, AWS's SubmitJob quota), the proxy never sees more
    than ceiling + burst (55) SubmitJobs in any one-second window, and no more than
    burst + ceiling x elapsed over the whole pass."""
    write_jobs(repo, 120)
    repo.commit("120 jobs")
    controller = proxied_controller(proxy, repo, tmp_path, monkeypatch)
    assert controller.settings.rate_limit == 50.0

    result = controller.reconcile()

    assert result.result == "ok"
    times = [s.at for s in proxy.seen if s.operation == "SubmitJob"]
    elapsed = times[-1] - times[0]
    busiest = proxy.max_requests_in_window(1.0, operation="SubmitJob")
    report(
        f"SubmitJobs={len(times)} in {elapsed:.2f}s = {(len(times) - 1) / elapsed:.1f}/s; "
        f"busiest 1s window={busiest} (ceiling 50/s, burst 5)"
    )
    assert len(times) == 120
    assert busiest <= 55 + 10  # +10: up to 200 ms of arrival jitter at 50/s (a loaded machine)
    assert len(times) <= 5 + 50 * elapsed + 1


def test_time_budget_cuts_a_big_commit_short_and_progress_continues(
    moto: demo_backend.MotoBatch,
    proxy: FaultProxy,
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch: Any,
    report: Any,
) -> None:
    """With max_pass_seconds=1.5 and 40 requests/s, a 150-job commit takes several
    passes: each submits some jobs, reports the rest "deferred" (no intent left
    open), and together they submit every job exactly once."""
    expected = write_jobs(repo, 150)
    repo.commit("150 jobs")
    controller = proxied_controller(
        proxy, repo, tmp_path, monkeypatch, rate_limit=40, max_pass_seconds="1.5s"
    )

    # 150 jobs at 40/s need 3.75 s: at least three 1.5 s passes, more on a slow machine.
    passes = converge(controller, max_passes=30)

    submitted = [
        sum(r.action.action == "submit" and r.result == "ok" for r in p.results) for p in passes
    ]
    deferred = [sum(r.result == "deferred" for r in p.results) for p in passes]
    report(f"passes={len(passes)} submitted per pass={submitted} deferred per pass={deferred}")
    cut_short = [p for p in passes if any(r.result == "deferred" for r in p.results)]
    assert len(cut_short) >= 2
    for p in cut_short:
        assert p.result == "degraded"
        assert "time budget" in p.message and "continue next pass" in p.message
    assert all(n > 0 for n in submitted[:-1])  # every cut-short pass still made progress
    assert sum(submitted) == 150
    assert controller.ledger.open_intents() == []
    found = managed_jobs(batch)
    assert set(found) == expected and set(found.values()) == {1}


def test_a_pass_whose_budget_is_gone_before_it_writes_still_makes_progress(
    moto: demo_backend.MotoBatch,
    proxy: FaultProxy,
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch: Any,
) -> None:
    """With a budget smaller than the reads of a pass (1 ms) and one submit at a time,
    every pass still starts exactly one write: 6 jobs take 6 passes, never zero."""
    expected = write_jobs(repo, 6)
    repo.commit("6 jobs")
    controller = proxied_controller(
        proxy,
        repo,
        tmp_path,
        monkeypatch,
        rate_limit=1000,
        concurrency=1,
        max_pass_seconds="1ms",
    )
    passes = converge(controller, max_passes=10)
    writes = [sum(r.result == "ok" for r in p.results) for p in passes]
    # The definition is registered in pass 1 (registrations are not deferred).
    assert writes == [2, 1, 1, 1, 1, 1, 0]
    found = managed_jobs(batch)
    assert set(found) == expected and set(found.values()) == {1}
