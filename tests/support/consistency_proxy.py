"""A proxy in front of moto that answers like real AWS Batch: late, and forgetful.

moto is strongly consistent and never forgets a job. Real AWS Batch lists a new
job late (DescribeJobs can return an empty list, and ListJobs omit it, for seconds
after SubmitJob returned its ID) and forgets finished jobs after about a week. This
proxy reproduces both on the responses moto gives, so tests can check that the
controller treats *late* as *not visible yet*, never as *finished* or *gone*:

* ``list_lag``: a job is left out of ListJobs and DescribeJobs answers until this
  many seconds after SubmitJob returned its ID through the proxy (0: visible at once);
  ``set_lag`` changes it while a test runs (AWS's lag is not constant either);
* ``forget_finished()``: every job that is finished *now* is left out of every
  answer from now on (a week passed);
* ``hide(ids)`` / ``show(ids)``: leave chosen jobs out, or bring them back.

CancelJob/TerminateJob pass through with the ID (AWS accepts them for a job it does
not list yet). Everything else (DynamoDB is not proxied: only Batch's endpoint points
here) passes through unchanged; the fault proxy's counters (``count``,
``reached_aws``) work as for :class:`~tests.support.fault_proxy.FaultProxy`.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.fault_proxy import OPERATIONS, FaultProxy

FINISHED = ("SUCCEEDED", "FAILED")


class ConsistencyProxy(FaultProxy):
    """An eventually consistent, forgetful AWS Batch in front of moto (127.0.0.1 only)."""

    def __init__(self, upstream: str, *, list_lag: float = 0.0) -> None:
        super().__init__(upstream)
        self.list_lag = list_lag
        self._born: dict[str, float] = {}  # job id -> when SubmitJob returned it
        self._forgotten: set[str] = set()
        self._hidden: set[str] = set()
        self._state_lock = threading.Lock()
        self.left_out: dict[str, int] = {"ListJobs": 0, "DescribeJobs": 0}

    # --- what tests do ---
    def set_lag(self, seconds: float) -> None:
        self.list_lag = seconds

    def hide(self, job_ids: list[str] | set[str]) -> None:
        with self._state_lock:
            self._hidden |= set(job_ids)

    def show(self, job_ids: list[str] | set[str]) -> None:
        with self._state_lock:
            self._hidden -= set(job_ids)

    def forget_finished(self, statuses: dict[str, str]) -> int:
        """Forget every job of ``statuses`` (id -> status, read from moto) that is
        finished, as AWS does a week after it ended; how many were forgotten."""
        done = {job_id for job_id, status in statuses.items() if status in FINISHED}
        with self._state_lock:
            self._forgotten |= done
        return len(done)

    def forgotten(self) -> set[str]:
        with self._state_lock:
            return set(self._forgotten)

    # --- the proxy ---
    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        status, headers, data = super()._forward(handler, body)
        if status != 200:
            return status, headers, data
        segment = handler.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
        operation = OPERATIONS.get(segment, segment)
        if operation == "SubmitJob":
            job_id = json.loads(data).get("jobId")
            if job_id:
                with self._state_lock:
                    self._born[str(job_id)] = time.monotonic()
            return status, headers, data
        key = {"ListJobs": "jobSummaryList", "DescribeJobs": "jobs"}.get(operation)
        if key is None:
            return status, headers, data
        answer: dict[str, Any] = json.loads(data)
        kept = [job for job in answer.get(key, []) if self._visible(str(job.get("jobId", "")))]
        self.left_out[operation] += len(answer.get(key, [])) - len(kept)
        answer[key] = kept
        return status, headers, json.dumps(answer).encode()

    def _visible(self, job_id: str) -> bool:
        parent = job_id.split(":", 1)[0]  # array children follow their parent
        with self._state_lock:
            if parent in self._forgotten or parent in self._hidden:
                return False
            born = self._born.get(parent)
        return born is None or time.monotonic() - born >= self.list_lag
