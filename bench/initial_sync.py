"""Initial sync of N new job manifests: the controller against a bare boto3 loop.

Both submit the same N requests to the same moto endpoint, each starting from
an empty moto (same queue, same job definition), so the ratio compares the
controller's own cost (git, parsing, validation, ledger, tags, logs) with the
floor: one SubmitJob after the other, nothing else. The controller's pass runs
in-process here (process start is the CLI scenario's business) with its rate
limit raised above what moto can serve; the default limit is reported by the
CLI scenario.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench import corpus, runtime
from bench.endpoint import MotoEndpoint


@dataclass
class InitialSync:
    jobs: int
    bare_seconds: float
    controller_seconds: float
    submitted: int
    result: str

    @property
    def ratio(self) -> float:
        return self.controller_seconds / self.bare_seconds


def bare_loop(moto: MotoEndpoint, jobs: int) -> float:
    """Seconds for one plain boto3 client to submit the same requests, one by one."""
    client = moto.client()
    requests = [corpus.job_request(corpus.job_name(i)) for i in range(jobs)]
    started = time.perf_counter()
    for request in requests:
        client.submit_job(**request)
    return time.perf_counter() - started


def measure(moto: MotoEndpoint, workdir: Path, jobs: int, *, repeats: int = 1) -> InitialSync:
    """Best of ``repeats`` for each side (the machine is shared: the best run is the
    least disturbed one), alternating bare and controller runs."""
    repo = corpus.init_repo(workdir / "repo")
    corpus.write_jobs(repo, range(jobs))
    corpus.commit(repo, f"{jobs} jobs")
    bare: list[float] = []
    controlled: list[float] = []
    submitted, result = 0, ""
    for attempt in range(repeats):
        moto.fresh()
        bare.append(bare_loop(moto, jobs))
        moto.fresh()
        state = workdir / f"run-{attempt}" / "ledger.sqlite"
        controller = runtime.open_controller(runtime.settings(str(repo), state))
        try:
            started = time.perf_counter()
            outcome = controller.run()
            controlled.append(time.perf_counter() - started)
        finally:
            controller.close()
        submitted = outcome.counts().get("submit_ok", 0)
        result = outcome.result
    return InitialSync(jobs, min(bare), min(controlled), submitted, result)
