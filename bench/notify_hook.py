"""What the commit-status hook costs a pass (issue 16): ``Reporter.after_pass`` wall time.

    .venv/bin/python -m bench.notify_hook                 # 5,000-job sync, 200 open commits
    .venv/bin/python -m bench.notify_hook --jobs 500 --commits 20

A real SQLite ledger in a temporary folder, filled through the ledger's own
methods: one commit of ``--jobs`` submitted runs (the pass that submitted them
all), and ``--commits`` commits of 5 active runs each. The GitHub target points
at a closed port on 127.0.0.1: requests are built and queued (their delivery
fails in the background, as with a forge that is down), so the time is the
hook's own: ledger reads, reports, the memo. Median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from pydantic import SecretStr

from controller.engine.apply import ActionResult
from controller.engine.reconcile import PassResult
from controller.model.plan import Action
from controller.model.records import Provenance
from controller.service.notify.config import ForgeTarget, NotifyConfig
from controller.service.notify.delivery import RetryPolicy
from controller.service.notify.reporter import MEMO_KEY, Reporter
from controller.state.sqlite import SqliteLedger


def _fill(ledger: SqliteLedger, sha: str, count: int, status: str, tag: str) -> list[ActionResult]:
    results = []
    for n in range(count):
        token, job_id, name = uuid.uuid4().hex, uuid.uuid4().hex, f"{tag}-{n}"
        ledger.record_intent(
            token=token,
            queue="q",
            name=name,
            manifest=f"jobs/{name}.json",
            spec_hash="h",
            prune=True,
            provenance=Provenance(sha, "Ada"),
        )
        ledger.record_submitted(token, job_id, status)
        action = Action("submit", "job", name, f"jobs/{name}.json", queue="q")
        results.append(ActionResult(action, "ok", aws_id=job_id))
    return results


def _time(reporter: Reporter, outcome: PassResult, repeats: int, reset: bool) -> float:
    times = []
    for _ in range(repeats):
        if reset:  # each round as the first pass that sees these submissions
            reporter.commits.clear()
        started = time.perf_counter()
        reporter.after_pass(outcome)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ledger = SqliteLedger(Path(folder) / "ledger.sqlite")
        ledger.set_meta(MEMO_KEY, '{"v":1,"commits":{}}')  # not a first start: no seeding
        sync = _fill(ledger, "a" * 40, args.jobs, "SUCCEEDED", "sync")
        for n in range(args.commits):
            _fill(ledger, f"{n:040x}", 5, "RUNNING", f"open{n}")
        forge = ForgeTarget("github", "http://127.0.0.1:9", "o/r", SecretStr("bench-token"))
        config = NotifyConfig(forges=[forge])
        retry = RetryPolicy(attempts=1, pause=3600.0, timeout=0.5)
        reporter = Reporter(config, ledger, retry=retry, forge_interval=0.0)
        idle = PassResult(pass_id="idle", revision="b" * 40)
        first = PassResult(pass_id="sync", revision="a" * 40, results=sync)
        rows = [("idle pass, nothing followed", _time(reporter, idle, args.repeats, True))]
        rows.append((f"pass that submitted {args.jobs} jobs", _time(reporter, first, 1, True)))
        reporter.commits.clear()
        for n in range(args.commits):  # follow the open commits (as after their submit)
            reporter._memo(f"{n:040x}", set(), [])
        rows.append(
            (
                f"steady pass, {args.commits} open commits x 5 jobs",
                _time(reporter, idle, args.repeats, False),
            )
        )
        reporter.close(0.1)
        ledger.close()
    for label, seconds in rows:
        print(f"{label:<45} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
