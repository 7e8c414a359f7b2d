"""Run a command the way a person at a terminal does: on a pseudo-terminal (pty) of a
given size, so colour, TTY detection and wrapping behave as they would for them."""

from __future__ import annotations

import fcntl
import os
import pty
import select
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
) -> tuple[int, str]:
    """``python -m controller *args`` with stdout and stderr on one pty: (exit code, text)."""
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
            elif child.poll() is not None:
                break
        code = child.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return code, output.decode(errors="replace").replace("\r\n", "\n")
