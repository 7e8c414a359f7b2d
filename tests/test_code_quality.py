"""The house rules, checked on every run: ruff lint and format, mypy strict, and
the pure core never importing boto3 or git (kopf-style layering)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE = ["manifests", "desired", "plan", "jobstatus", "tags", "records"]
IO_MODULES = {"boto3", "botocore.config", "botocore.exceptions", "git", "moto"}


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; it is part of the [test] extra")
    return found


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args: list[str]) -> None:
    result = subprocess.run([_tool("ruff"), *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", PURE)
def test_pure_core_does_no_io(module: str) -> None:
    """plan/desired/manifests never import boto3, git or moto (botocore's model is data)."""
    tree = ast.parse((ROOT / "controller" / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = {name for name in imported if name.split(".")[0] in {"boto3", "git", "moto"}}
    forbidden |= imported & IO_MODULES
    forbidden |= imported & {"controller.batch", "controller.source", "controller.ledger"}
    assert not forbidden, f"{module} imports {forbidden}"
