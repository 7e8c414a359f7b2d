"""An embedded moto Batch endpoint with job lifecycles, for the demo and the tests.

moto with Docker off marks every job SUCCEEDED inside SubmitJob, and its
CancelJob/TerminateJob only raise a flag that nothing reads. This module owns
the (documented, see shared/MOTO-NOTES.md) shims that make jobs behave:

* ``walk``: jobs step SUBMITTED -> PENDING -> RUNNABLE -> STARTING -> RUNNING
  every ``step`` seconds and succeed after ``run`` seconds of running (demo);
* ``hold``: jobs step up to RUNNING and stay there until a test finishes them
  with :func:`finish_job` (terminate/cancel tests);
* ``queued``: jobs stay SUBMITTED (cancel tests);
* ``instant``: moto's own behaviour, SUCCEEDED at once (bulk tests, benchmarks).

In every mode but ``instant``, CancelJob (before start) and TerminateJob end
the job FAILED with the reason, as AWS does. moto is imported lazily: it is a
demo/test dependency only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import boto3

Mode = Literal["instant", "walk", "hold", "queued"]
ACCOUNT = "123456789012"
REGION = "us-east-1"
RESET_ATTEMPTS = 3

_installed = False
_settings: dict[str, Any] = {"mode": "instant", "run": 3.0}


def _install_shims() -> None:
    global _installed
    if _installed:
        return
    from moto.batch.models import Job
    from moto.batch_simple.models import BatchSimpleBackend

    original_mark = BatchSimpleBackend._mark_job_as_finished

    def mark(self: Any, include_start_attempt: bool, job: Any) -> None:
        if _settings["mode"] == "instant":
            original_mark(self, include_start_attempt, job)
            return
        self.backend._jobs[job.job_id] = job
        job.job_started_at = datetime.now()
        job.log_stream_name = job._stream_name
        if include_start_attempt:
            job._start_attempt()

    def terminate(self: Any, reason: str) -> None:
        if _settings["mode"] == "instant":
            self.stop = True
            self.job_stopped_reason = reason
            return
        self.stop = True
        self.job_stopped_reason = reason
        for child in self._child_jobs or []:
            child.job_stopped_reason = reason
            child._mark_stopped(success=False)
        self._mark_stopped(success=False)

    managed_status: Any = Job.status  # the ManagedState property Job inherits

    def status(self: Any) -> str | None:
        # moto stores dependsOn but never waits on it; in walk/hold mode a
        # dependent job stays PENDING until its upstream jobs succeed (and fails
        # if one fails), as on AWS, so the demo's pipeline moves in order.
        waiting = self.depends_on and not self.job_stopped and self._status == "PENDING"
        if _settings["mode"] in ("walk", "hold") and waiting:
            upstream = [self.all_jobs.get(dep["jobId"]) for dep in self.depends_on]
            states = [job.status if job is not None else None for job in upstream]
            if "FAILED" in states:
                self.job_stopped_reason = "Dependent Job failed"
                self._mark_stopped(success=False)
            elif any(state != "SUCCEEDED" for state in states):
                self._time_progressed = datetime.now()
                return "PENDING"
        result: str | None = managed_status.fget(self)
        return result

    BatchSimpleBackend._mark_job_as_finished = mark
    Job.terminate = terminate
    setattr(Job, "status", property(status, managed_status.fset))  # noqa: B010
    _serialize_dynamodb()
    _installed = True


def _serialize_dynamodb() -> None:
    """One DynamoDB request at a time: moto's DynamoDB is not thread-safe (a transaction
    deep-copies tables that a concurrent request is changing, and answers HTTP 500 until
    botocore gives up). Real DynamoDB serves concurrent requests; the shared ledger's
    concurrent claims and status writes must not fail on moto's account."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action


def set_mode(mode: Mode, *, step: float = 0.2, run: float = 3.0) -> None:
    """Choose how new jobs behave (process-global, like moto itself)."""
    from moto.moto_api import state_manager

    _install_shims()
    _settings.update(mode=mode, run=run)
    if mode == "queued":
        state_manager.set_transition("batch::job", {"progression": "manual", "times": 10**9})
    elif mode in ("walk", "hold"):
        state_manager.set_transition("batch::job", {"progression": "time", "seconds": step})
    else:
        state_manager.unset_transition("batch::job")


def _jobs() -> dict[str, Any]:
    from moto.batch.models import batch_backends

    jobs: dict[str, Any] = batch_backends[ACCOUNT][REGION]._jobs
    return jobs


def finish_job(job_id: str, success: bool = True) -> None:
    """End a held job (and its array children) as SUCCEEDED or FAILED."""
    job = _jobs()[job_id]
    for child in job._child_jobs or []:
        child._mark_stopped(success=success)
    job._mark_stopped(success=success)


def forget_job(job_id: str) -> None:
    """Drop a job as AWS does about a week after it ends (moto keeps jobs forever)."""
    from moto.batch.models import batch_backends

    backend = batch_backends[ACCOUNT][REGION]
    job = backend._jobs.pop(job_id)
    queue = job.job_queue
    queue.jobs = [j for j in queue.jobs if j.job_id != job_id]


def job_status(job_id: str) -> str:
    return str(_jobs()[job_id].status)


def _finisher(stop: threading.Event) -> None:
    """Walk mode: succeed jobs that have been RUNNING for ``run`` seconds."""
    running_since: dict[str, float] = {}
    while not stop.wait(0.5):
        if _settings["mode"] != "walk":
            continue
        now = time.monotonic()
        for job_id, job in list(_jobs().items()):
            if job.job_stopped or job._child_jobs is not None:
                continue
            if job.status == "RUNNING":
                since = running_since.setdefault(job_id, now)
                if now - since >= _settings["run"]:
                    job._mark_stopped(success=True)


@dataclass
class MotoBatch:
    """A running in-process moto server; ``endpoint`` is what boto3 should use."""

    server: Any
    endpoint: str
    _stop: threading.Event

    def client(self, service: str = "batch") -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_queues(self, queues: list[str] | set[str]) -> None:
        """A compute environment and the named job queues (idempotent)."""
        iam = self.client("iam")
        try:
            role = iam.create_role(RoleName="batch-gitops-demo", AssumeRolePolicyDocument="{}")
            role_arn = role["Role"]["Arn"]
        except iam.exceptions.EntityAlreadyExistsException:
            role_arn = iam.get_role(RoleName="batch-gitops-demo")["Role"]["Arn"]
        batch = self.client()
        environments = batch.describe_compute_environments(computeEnvironments=["demo-ce"])
        if environments["computeEnvironments"]:
            ce_arn = environments["computeEnvironments"][0]["computeEnvironmentArn"]
        else:
            ce_arn = batch.create_compute_environment(
                computeEnvironmentName="demo-ce",
                type="UNMANAGED",
                state="ENABLED",
                serviceRole=role_arn,
            )["computeEnvironmentArn"]
        existing = {q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]}
        for queue in sorted(set(queues) - existing):
            batch.create_job_queue(
                jobQueueName=queue,
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce_arn}],
            )

    def reset(self) -> None:
        """Empty every moto backend.

        An in-process server is reset in-process (what its ``/moto-api/reset`` handler
        calls), so no socket can be lost on the way; a server in another process gets
        the POST, sent again if the connection drops (a reset is idempotent).
        """
        if self.server is not None:
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
            return
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        for attempt in range(RESET_ATTEMPTS):
            try:
                urllib.request.urlopen(request, timeout=10).read()
                return
            except ConnectionError:  # reset, refused or closed without a reply
                if attempt == RESET_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def stop(self) -> None:
        self._stop.set()
        self.server.stop()


def start(
    mode: Mode = "instant", *, step: float = 0.2, run: float = 3.0, export_env: bool = True
) -> MotoBatch:
    """Start moto on 127.0.0.1 (free port), Docker off, and point boto3 at it."""
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    default_user_config["batch"] = {"use_docker": False}
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on the terminal
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    set_mode(mode, step=step, run=run)
    if export_env:
        os.environ["AWS_ENDPOINT_URL_BATCH"] = endpoint
        os.environ["AWS_ACCESS_KEY_ID"] = "testing"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
        os.environ["AWS_DEFAULT_REGION"] = REGION
        os.environ["AWS_REGION"] = REGION
        os.environ.pop("AWS_PROFILE", None)
    stop = threading.Event()
    threading.Thread(target=_finisher, args=(stop,), name="moto-finisher", daemon=True).start()
    return MotoBatch(server=server, endpoint=endpoint, _stop=stop)
