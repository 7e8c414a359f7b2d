"""Long work shows progress: a pass applying many actions logs ``apply_progress`` events
(done, total, rate, time left) while it runs, and its action metrics and events move
as each submit finishes, not all at once at the end of a wave."""

from __future__ import annotations

import threading
from typing import Any

import structlog
from prometheus_client import REGISTRY

from controller.demo import backend as demo_backend
from controller.progress import Progress
from tests.conftest import Controller, GitRepo
from tests.support.clock import Clock
from tests.support.controllers import make_api
from tests.support.manifests import definition, job

DEFINITION = definition("worker")


def sixty_jobs(repo: GitRepo) -> None:
    repo.write("defs/worker.json", DEFINITION)
    for n in range(60):
        repo.write(f"jobs/job-{n:02d}.json", job(f"job-{n:02d}", definition="worker"))
    repo.commit("60 jobs")


def test_progress_speaks_once_per_interval_with_rate_and_time_left() -> None:
    """Nothing before the interval, one event per interval after it with done/total, the
    rate and the time left; nothing when the work is done (the work's own line says so)."""
    clock = Clock(now=100.0)
    progress = Progress("work", total=100, interval=10.0, clock=clock)
    spoken = []
    for _ in range(40):
        clock.now += 0.5  # 2 per second
        spoken.append(progress.advance(queue="q"))
    events = [event for event in spoken if event is not None]
    # 20 s of work at 2 per second, interval 10 s: at 10 s and at 20 s, never in between.
    assert [(e["done"], e["eta_seconds"]) for e in events] == [(20, 40), (40, 30)]
    assert events[0] == {
        "done": 20,
        "total": 100,
        "percent": 20.0,
        "per_second": 2.0,
        "eta_seconds": 40,
        "queue": "q",
    }
    clock.now += 60
    assert progress.advance(60) is None  # done: 100 of 100


def test_a_long_pass_reports_progress_and_counts_submits_as_they_finish(
    controller: Controller, repo: GitRepo, moto: demo_backend.MotoBatch
) -> None:
    """60 jobs at 30 requests/s (about 2 s): while the pass runs, the submit counter is
    seen strictly between 0 and 60 and the pending-actions gauge counting down (0 at the
    end), and `apply_progress` events (every 0.5 s here) count up to the total."""
    sixty_jobs(repo)
    settings = controller.settings.model_copy(update={"progress_interval": 0.5})
    slow = Controller(settings, make_api(rate_limit=30), controller.ledger)

    def submits() -> float:
        value = REGISTRY.get_sample_value(
            "batch_gitops_actions_total",
            {"action": "submit", "queue": "test-queue", "result": "ok"},
        )
        return value or 0.0

    def pending() -> float:
        return REGISTRY.get_sample_value("batch_gitops_pending_actions") or 0.0

    before = submits()
    seen: list[float] = []
    pending_seen: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.1):
            seen.append(submits() - before)
            pending_seen.append(pending())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with structlog.testing.capture_logs() as logs:
            result = slow.reconcile()
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert result.result == "ok" and submits() - before == 60
    assert any(0 < count < 60 for count in seen), seen
    assert any(0 < count < 61 for count in pending_seen), pending_seen
    assert pending() == 0
    progress: list[dict[str, Any]] = [e for e in logs if e["event"] == "apply_progress"]
    assert progress, "no apply_progress event in a 2 s pass with a 0.5 s interval"
    done = [e["done"] for e in progress]
    assert done == sorted(done) and all(e["total"] == 61 for e in progress)
    assert all(e["per_second"] > 0 and e["eta_seconds"] is not None for e in progress)


def test_actions_a_time_budget_defers_stay_pending_until_a_later_pass(
    controller: Controller, repo: GitRepo, moto: demo_backend.MotoBatch
) -> None:
    """A 1 s budget at 20 requests/s cuts a 60-job pass short: batch_gitops_pending_actions
    then equals the deferred count, and the passes that finish the job bring it to 0."""
    sixty_jobs(repo)
    settings = controller.settings.model_copy(update={"max_pass_seconds": 1.0})
    slow = Controller(settings, make_api(rate_limit=20), controller.ledger)
    first = slow.reconcile()
    deferred = sum(r.result == "deferred" for r in first.results)
    assert deferred > 0
    assert REGISTRY.get_sample_value("batch_gitops_pending_actions") == deferred
    for _ in range(10):
        if slow.reconcile().result == "ok":
            break
    assert REGISTRY.get_sample_value("batch_gitops_pending_actions") == 0
