"""A 1,000-job commit against an endpoint that throttles like AWS Batch, default settings.

One ``batch-gitops reconcile`` process (timed from fork to exit, so process start
counts) applies a commit of N new jobs through :mod:`bench.throttling`: SubmitJob is
allowed 50/s ("alone in the account") or 25/s ("sharing the account" with a tool
that uses the other half). Nothing is tuned for the benchmark: no
``BATCH_GITOPS_RATE_LIMIT``, no concurrency, only the repository, the ledger and
the endpoint. The endpoint's own counters give the share of SubmitJobs it throttled
and how many reached moto; moto's job list says whether every job exists exactly once.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import corpus, throttling
from bench.cli_vs_controller import STEP_TIMEOUT, batch_gitops
from bench.endpoint import MotoEndpoint

PREFIX = "wave"


@dataclass
class ThrottledCommit:
    label: str
    allowed: float  # SubmitJob/s the endpoint allows
    settings: str  # the BATCH_GITOPS_* overrides of a comparison run, or "defaults"
    jobs: int
    seconds: float
    exit_code: int
    sent: int  # SubmitJob requests that reached the endpoint
    throttled: int  # of which answered 429
    reached: int  # of which forwarded to moto
    distinct: int  # job names in moto
    duplicates: int  # names submitted more than once
    first_submit: float  # seconds from fork to the first SubmitJob at the endpoint
    last_submit: float  # seconds from fork to the last one

    @property
    def submits_per_second(self) -> float:
        return self.jobs / self.seconds

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.sent if self.sent else 0.0

    @property
    def exactly_once(self) -> bool:
        return (
            self.exit_code == 0
            and self.distinct == self.jobs
            and self.duplicates == 0
            and self.reached == self.jobs
        )


def _jobs_in_moto(moto: MotoEndpoint) -> Counter[str]:
    listed = moto.client().list_jobs(jobQueue=corpus.QUEUE)["jobSummaryList"]
    return Counter(str(job["jobName"]) for job in listed)


def measure(
    moto: MotoEndpoint,
    workdir: Path,
    jobs: int,
    *,
    allowed: float,
    label: str,
    env: dict[str, str] | None = None,
    burst_seconds: float = 1.0,
) -> ThrottledCommit:
    """``env``: BATCH_GITOPS_* overrides for a comparison run (the default: none);
    ``burst_seconds``: the endpoint's bucket capacity in seconds of its rate."""
    repo = workdir / "repo"
    if not repo.exists():
        corpus.init_repo(repo)
        corpus.write_jobs(repo, range(jobs), PREFIX)
        corpus.commit(repo, f"{jobs} jobs")
    run = workdir / f"run-{allowed:g}-{len(list(workdir.glob('run-*')))}"
    moto.fresh()
    proxy = throttling.start(moto.endpoint, submit_rate=allowed, burst_seconds=burst_seconds)
    variables = {
        **os.environ,
        **moto.environment(),
        "AWS_ENDPOINT_URL_BATCH": proxy.endpoint,
        "BATCH_GITOPS_REPO": str(repo),
        "BATCH_GITOPS_STATE": str(run / "ledger.sqlite"),
        "BATCH_GITOPS_WORKDIR": str(run / "cache"),
        "BATCH_GITOPS_LOG_FORMAT": "json",
    }
    # The defaults, whatever the caller's shell says, unless this is a comparison run.
    for name in [v for v in variables if v.startswith("BATCH_GITOPS_RATE")]:
        del variables[name]
    variables.update(env or {})
    run.mkdir(parents=True, exist_ok=True)
    try:
        with (run / "controller.log").open("a") as log:
            started = time.monotonic()
            done = subprocess.run(
                [*batch_gitops(), "reconcile"],
                env=variables,
                stdout=subprocess.DEVNULL,
                stderr=log,
                timeout=STEP_TIMEOUT,
                check=False,
            )
            seconds = time.monotonic() - started
    finally:
        proxy.stop()
    found = _jobs_in_moto(moto)
    submits = [seen.at - started for seen in proxy.seen if seen.operation == "SubmitJob"]
    return ThrottledCommit(
        label=label,
        allowed=allowed,
        settings=" ".join(f"{k}={v}" for k, v in (env or {}).items()) or "defaults",
        jobs=jobs,
        seconds=seconds,
        exit_code=done.returncode,
        sent=proxy.count("SubmitJob"),
        throttled=proxy.count("SubmitJob", fault="throttle"),
        reached=proxy.reached_aws("SubmitJob"),
        distinct=len(found),
        duplicates=sum(1 for n in found.values() if n > 1),
        first_submit=min(submits, default=0.0),
        last_submit=max(submits, default=0.0),
    )
