"""What a reviewer does: run `batch-gitops demo`, open the /metrics it prints, and watch the
pipeline's numbers change as jobs are submitted and walk through their states."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.observability.live import http_get
from tests.support.cli import start_cli, stop
from tests.support.waiting import wait_until

METRICS_URL = re.compile(r"Metrics: (http://127\.0\.0\.1:\d+/metrics)")


def jobs_by_status(text: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "batch_gitops_managed_jobs":
            for sample in family.samples:
                counts[sample.labels["status"]] += int(sample.value)
    return counts


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_demo_metrics_move_as_jobs_walk(tmp_path: Path) -> None:
    """The demo's /metrics shows submissions, passes counting up, and managed jobs moving
    from queued/running states to SUCCEEDED between two scrapes."""
    process = start_cli(
        "demo",
        "--workdir",
        str(tmp_path / "demo"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen: list[str] = []
    try:

        def metrics_url() -> str:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert process.poll() is None, "".join(seen)
                return ""
            match = METRICS_URL.search(seen[-1])
            return match.group(1) if match else ""

        try:
            url = wait_until("the demo to print its /metrics address", metrics_url, 60, 0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the demo printed:\n{''.join(seen)}") from exc

        first = http_get(url)[1]
        assert sample(first, "batch_gitops_actions_total", action="submit", result="ok") > 0
        early = jobs_by_status(first)
        passes_before = sample(first, "batch_gitops_passes_total")

        def moved() -> str:
            text = http_get(url)[1]
            later = jobs_by_status(text)
            if (
                later["SUCCEEDED"] > early["SUCCEEDED"]
                and sample(text, "batch_gitops_passes_total") > passes_before
            ):
                return text
            return ""

        try:
            wait_until("jobs to move on and passes to count up", moved, 45, 0.5)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: first {early}, now {jobs_by_status(http_get(url)[1])}"
            ) from exc
        assert sum(early.values()) > early["SUCCEEDED"]  # some were still on their way
    finally:
        stop(process, signal.SIGINT, timeout=15)
