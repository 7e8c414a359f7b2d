"""Start, drive and stop the moto endpoint child process (see :mod:`bench.moto_process`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.demo import backend as demo_backend

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench-queue"
DEFINITION = "bench-def"
START_TIMEOUT = 60.0


@dataclass
class MotoEndpoint:
    process: subprocess.Popen[str]
    endpoint: str
    # The AWS_* variables this process had before start(): stop() puts them back.
    previous_env: dict[str, str | None] = field(default_factory=dict)

    @property
    def batch(self) -> demo_backend.MotoBatch:
        # MotoBatch's client/create_queues/reset only need the endpoint.
        return demo_backend.MotoBatch(server=None, endpoint=self.endpoint, _stop=threading.Event())

    def client(self) -> Any:
        return self.batch.client()

    def _command(self, line: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"moto process answered {answer!r} to {line!r}")

    def set_mode(self, mode: demo_backend.Mode) -> None:
        self._command(f"mode {mode}")

    def fresh(self) -> None:
        """Empty moto, jobs instant, one queue and one (unmanaged) job definition."""
        self.batch.reset()
        self.set_mode("instant")
        self.batch.create_queues([QUEUE])
        self.client().register_job_definition(
            jobDefinitionName=DEFINITION,
            type="container",
            containerProperties={
                "image": "busybox",
                "command": ["true"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "128"},
                ],
            },
        )

    def environment(self) -> dict[str, str]:
        """What boto3 (and the aws CLI) need to talk to this endpoint and nothing else."""
        return {
            "AWS_ENDPOINT_URL_BATCH": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": demo_backend.REGION,
            "AWS_REGION": demo_backend.REGION,
        }

    def stop(self) -> None:
        for key, value in self.previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start() -> MotoEndpoint:
    """Start moto in a child process and point this process's boto3 at it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.moto_process"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    timer = threading.Timer(START_TIMEOUT, process.kill)
    timer.start()
    try:
        first = process.stdout.readline()
    finally:
        timer.cancel()
    if not first:
        raise RuntimeError("the moto process exited before printing its endpoint")
    endpoint = MotoEndpoint(process, json.loads(first)["endpoint"])
    changed = [*endpoint.environment(), "AWS_PROFILE"]
    endpoint.previous_env = {key: os.environ.get(key) for key in changed}
    os.environ.update(endpoint.environment())
    os.environ.pop("AWS_PROFILE", None)
    return endpoint
