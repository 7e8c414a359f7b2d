"""Log shape: JSON off a TTY, pretty on one; one canonical line per pass and one event per
action carrying what an operator needs to find the job, its manifest and its commit."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from typing import Any

import pytest
import structlog

from controller.demo import backend as demo_backend
from controller.logs import configure
from tests.conftest import Controller, GitRepo
from tests.support.manifests import definition, job

EMIT = (
    "from controller.logs import configure; import structlog; configure('auto'); "
    "structlog.get_logger('t').info('hello', answer=42)"
)


def _read_pty(fd: int, deadline: float) -> bytes:
    out = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed its side
            break
        if not chunk:
            break
        out += chunk
    return out


def test_json_off_a_tty_and_pretty_on_a_tty() -> None:
    """The same `auto` configuration writes a JSON object per line to a pipe, and a
    human-readable (non-JSON) line to a real terminal (a pty)."""
    piped = subprocess.run([sys.executable, "-c", EMIT], capture_output=True, text=True, timeout=30)
    event = json.loads(piped.stderr.strip().splitlines()[-1])
    assert event["event"] == "hello" and event["answer"] == 42 and event["level"] == "info"

    master, slave = pty.openpty()
    try:
        child = subprocess.Popen([sys.executable, "-c", EMIT], stderr=slave, stdout=slave)
        os.close(slave)
        text = _read_pty(master, time.monotonic() + 20).decode(errors="replace")
        child.wait(timeout=20)
    finally:
        os.close(master)
    assert "hello" in text and "answer" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.strip().splitlines()[-1])


@pytest.fixture
def json_logs() -> Any:
    """The controller's JSON configuration, writing into a buffer this test reads; the
    previous configuration comes back after."""
    saved = structlog.get_config()
    configure("json")
    buffer = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    yield buffer
    structlog.configure(**saved)


def test_pass_line_and_action_events(
    json_logs: io.StringIO,
    controller: Controller,
    repo: GitRepo,
    moto: demo_backend.MotoBatch,
) -> None:
    """A pass that registers and submits logs one `pass` line (pass_id, revision, result,
    duration, counts) and one `action` event per action with action, manifest, job name,
    job ID, queue, revision, author and the same pass_id — and the job ID is AWS's."""
    repo.write("defs/trainer.json", definition("trainer"))
    repo.write("jobs/nightly.json", job("nightly"))
    sha = repo.commit("nightly")
    result = controller.reconcile()
    events: list[dict[str, Any]] = [
        json.loads(line) for line in json_logs.getvalue().splitlines() if line.startswith("{")
    ]
    passes = [e for e in events if e["event"] == "pass"]
    assert len(passes) == 1
    line = passes[0]
    assert line["pass_id"] == result.pass_id
    assert line["revision"] == sha[:12] and line["result"] == "ok"
    assert isinstance(line["duration_seconds"], float)
    assert line["submit_ok"] == 1 and line["register_ok"] == 1

    (submit,) = [e for e in events if e["event"] == "action" and e["action"] == "submit"]
    job_id = controller.ledger.current_jobs()[("test-queue", "nightly")].job_id
    assert submit["aws_id"] == job_id
    assert submit["job_name"] == "nightly" and submit["queue"] == "test-queue"
    assert submit["manifest"] == "jobs/nightly.json"
    assert submit["revision"] == sha[:12] and submit["pass_id"] == result.pass_id
    assert submit["author"] == "Ada Author <ada@example.com>"
    (register,) = [e for e in events if e["event"] == "action" and e["action"] == "register"]
    assert register["definition"] == "trainer" and register["manifest"] == "defs/trainer.json"
