"""controller/policy.py is pure evaluation: no boto3, git, moto or I/O modules, so
it can be reasoned about (and fuzzed) as a function of its inputs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_policy_imports_no_io() -> None:
    """policy.py imports nothing that talks to AWS, git, the network or processes."""
    tree = ast.parse((ROOT / "controller" / "policy.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = {
        name
        for name in imported
        if name.split(".")[0] in {"boto3", "botocore", "git", "moto", "subprocess", "socket"}
        or name in {"controller.batch", "controller.source", "controller.ledger"}
    }
    assert imported and not forbidden, forbidden
