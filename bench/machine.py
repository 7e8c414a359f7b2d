"""What the numbers were measured on: CPU, cores, memory, load, versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        out = subprocess.run(["free", "-h"], capture_output=True, text=True, timeout=5).stdout
        total = out.splitlines()[1].split()[1]
        return f"{total} RAM"
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown RAM"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def describe() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{_cpu_model()}, nproc={os.cpu_count()}, {_memory()}, load average {load}; "
        f"Python {platform.python_version()}, moto {_version('moto')}, "
        f"boto3 {_version('boto3')}, git {_git_version()}"
    )


def _git_version() -> str:
    try:
        out = subprocess.run(["git", "--version"], capture_output=True, text=True, timeout=5)
        return out.stdout.split()[-1]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "-"
