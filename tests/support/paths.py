"""Where things are: the repository root, its example manifests, the tests' own data."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests"
TESTDATA = ROOT / "tests" / "testdata"
