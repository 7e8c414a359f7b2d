"""Real processes for the observability tests: a controller daemon and a Prometheus server.

Both listen on 127.0.0.1 only, start in a few seconds, and are stopped by the
context managers whatever the test does. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import start_cli, stop
from tests.support.ports import free_port
from tests.support.waiting import wait_until

__all__ = [
    "Daemon",
    "Prometheus",
    "free_port",
    "http_get",
    "run_daemon",
    "run_prometheus",
    "wait_until",
]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class Daemon:
    """``batch-gitops run`` in its own process; ``url`` is its HTTP address."""

    process: subprocess.Popen[Any]
    log_path: Path
    url: str = ""

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                events.append({"event": "unparsed", "line": line})
        return events


@contextmanager
def run_daemon(
    repo: Path | str, tmp_path: Path, env: dict[str, str] | None = None, interval: str = "1s"
) -> Iterator[Daemon]:
    log_path = tmp_path / "daemon.log"
    environment = {
        **os.environ,
        "BATCH_GITOPS_WORKDIR": str(tmp_path / "cache"),
        **(env or {}),
    }
    with log_path.open("w") as log_file:
        process = start_cli(
            "run",
            "--repo",
            str(repo),
            "--state",
            str(tmp_path / "ledger.sqlite"),
            "--interval",
            interval,
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    daemon = Daemon(process, log_path)
    try:

        def listening() -> str:
            assert process.poll() is None, f"daemon exited: {log_path.read_text()}"
            for event in daemon.log_events():
                if event.get("event") == "daemon_started":
                    return str(event["listen"])
            return ""

        daemon.url = "http://" + wait_until("the daemon to listen", listening, 30, 0.2)
        yield daemon
    finally:
        stop(process)


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        status, body = http_get(
            f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        reply = json.loads(body)
        assert status == 200 and reply["status"] == "success", f"{expr}: {body}"
        result = reply["data"]["result"]
        # scalar/string results are [time, value]; vectors and matrices are lists of series
        return (
            result
            if isinstance(result, list)
            and reply["data"]["resultType"]
            in (
                "vector",
                "matrix",
            )
            else [{"value": result}]
        )


@contextmanager
def run_prometheus(binary: str, target: str, tmp_path: Path) -> Iterator[Prometheus]:
    """A Prometheus server scraping ``target`` (host:port) every second as job batch-gitops."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML: no templating of a YAML string by hand
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "batch-gitops", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}")
    try:

        def ready() -> bool:
            assert process.poll() is None, f"prometheus exited: {log_path.read_text()}"
            try:
                return http_get(f"{prometheus.url}/-/ready", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until("Prometheus to be ready", ready, 30, 0.2)
        yield prometheus
    finally:
        stop(process)
