"""AWS Batch as an auditor sees it, and the levers tests pull on moto.

Views (a plain boto3 client, the ``batch`` fixture, as an auditor would use it):
``describe``, ``jobs_in``, ``jobs_by_name``, ``runs_by_name``, ``job_names`` and
``managed_jobs``. :class:`WriteCounter` counts the calls a controller's adapter makes.

Levers (moto in this process; ``controller.demo.backend`` holds jobs queued or running):
``wait_for_status`` and ``start_job``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from controller.aws.batch import WRITE_OPERATIONS, Boto3Batch
from controller.demo import backend as demo_backend
from controller.model.tags import MANAGED_BY_TAG
from tests.support.manifests import QUEUE
from tests.support.waiting import wait_until

# Every queue the repository's examples use, plus the tests' own ``test-queue``.
QUEUES = [
    "ml-training-queue",
    "cpu-job-queue",
    "gpu-job-queue",
    "compute-queue",
    "finance-team-queue",
    "analytics-queue",
    "test-queue",
]
DESCRIBE_BATCH = 100  # DescribeJobs takes at most 100 ids on AWS (moto takes any number)


def describe(batch: Any, job_id: str) -> dict[str, Any]:
    """DescribeJobs for one job that AWS knows."""
    [job] = batch.describe_jobs(jobs=[job_id])["jobs"]
    return dict(job)


def jobs_in(batch: Any, queue: str = QUEUE) -> list[dict[str, Any]]:
    """Every job AWS holds in ``queue``, described (with tags), array children left out.

    moto's ListJobs without ``jobStatus`` returns every status in one page and lists array
    children (``<id>:N``, untagged) beside their parent (see MOTO-NOTES)."""
    ids = [
        s["jobId"]
        for s in batch.list_jobs(jobQueue=queue)["jobSummaryList"]
        if ":" not in s["jobId"]
    ]
    jobs: list[dict[str, Any]] = []
    for start in range(0, len(ids), DESCRIBE_BATCH):
        jobs.extend(batch.describe_jobs(jobs=ids[start : start + DESCRIBE_BATCH])["jobs"])
    return jobs


def jobs_by_name(batch: Any, queue: str = QUEUE) -> dict[str, list[dict[str, Any]]]:
    """Every job in the queue, grouped by name (every run of each name)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for described in jobs_in(batch, queue):
        found.setdefault(described["jobName"], []).append(described)
    return found


def runs_by_name(batch: Any, queue: str = QUEUE) -> dict[str, int]:
    """How many runs AWS holds of each job name in the queue."""
    return {name: len(runs) for name, runs in jobs_by_name(batch, queue).items()}


def job_names(batch: Any, queue: str = QUEUE) -> list[str]:
    """The names of every job ListJobs shows in the queue, sorted, one per run."""
    return sorted(s["jobName"] for s in batch.list_jobs(jobQueue=queue)["jobSummaryList"])


def managed_jobs(batch: Any, queues: tuple[str, ...] | list[str]) -> Counter[tuple[str, str]]:
    """How many jobs AWS holds per (queue, name) carrying our managed-by tag."""
    found: Counter[tuple[str, str]] = Counter()
    for queue in queues:
        for job in jobs_in(batch, queue):
            if (job.get("tags") or {}).get(MANAGED_BY_TAG) == "batch-gitops":
                found[(queue, job["jobName"])] += 1
    return found


class WriteCounter:
    """Counts the Batch API calls a controller makes, by operation, through botocore's
    ``before-call`` event: once per call, however many HTTP attempts botocore's retry
    mode needs for it (a read retried after a dropped connection is still one read).
    SubmitJob and RegisterJobDefinition are never retried by botocore (see batch.py),
    so for them a call is a request that reached, or may have reached, AWS."""

    WRITES = WRITE_OPERATIONS

    def __init__(self, api: Boto3Batch) -> None:
        self.calls: list[str] = []
        for client in (api.client, api.submit_client):
            client.meta.events.register("before-call.batch.*", self._count)

    def _count(self, event_name: str = "", **_: Any) -> None:
        self.calls.append(event_name.rsplit(".", 1)[-1])

    @property
    def writes(self) -> list[str]:
        return [c for c in self.calls if c in self.WRITES]

    @property
    def reads(self) -> list[str]:
        return [c for c in self.calls if c not in self.WRITES]


def wait_for_status(job_id: str, status: str, timeout: float = 5.0) -> None:
    """Wait until moto reports ``status`` for a job (held jobs walk on a timer)."""
    wait_until(
        f"{job_id} to reach {status}", lambda: demo_backend.job_status(job_id) == status, timeout
    )


def start_job(job_id: str, status: str = "STARTING") -> None:
    """AWS's scheduler starts a queued job now: moto's job model is moved to ``status``
    (STARTING or RUNNING), where CancelJob no longer stops it, as on AWS."""
    from moto.batch.models import batch_backends

    job = batch_backends[demo_backend.ACCOUNT][demo_backend.REGION].get_job_by_id(job_id)
    assert job is not None, f"moto does not know {job_id}"
    job.status = status
