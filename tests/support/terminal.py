"""Run a command the way a person at a terminal does: on a pseudo-terminal (pty) of a
given size, so colour, TTY detection and wrapping behave as they would for them."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Sequence


def run_on_terminal(
    args: Sequence[str],
    env: dict[str, str],
    *,
    columns: int = 80,
    rows: int = 24,
    timeout: float = 60,
    cwd: str | None = None,
    until: str = "",
) -> tuple[int, str]:
    """``python -m controller *args`` with stdout and stderr on one pty: (exit code, text).

    ``until``: send SIGINT once the output contains it (a daemon, the demo), then read
    what the process prints until it exits."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "controller", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm-256color"},
            cwd=cwd,
        )
        os.close(slave)
        slave = -1
        output = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed its side
                    break
                if not chunk:
                    break
                output += chunk
                if until and until.encode() in output and child.poll() is None:
                    child.send_signal(signal.SIGINT)
                    until = ""
            elif child.poll() is not None:
                break
        if child.poll() is None:  # the deadline passed: never leave it running
            child.kill()
        code = child.wait(timeout=10)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return code, output.decode(errors="replace").replace("\r\n", "\n")
