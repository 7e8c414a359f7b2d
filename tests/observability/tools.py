"""Finding the Prometheus binaries (Debian's ``prometheus`` package) for these tests.

A missing binary fails the test with the install hint, on CI and on a laptop alike:
the suite never goes green by skipping (``tests/support/no_skips.py``).
"""

from __future__ import annotations

import shutil

import pytest

INSTALL_HINT = "install Debian's `prometheus` package (apt-get install prometheus); .ci/run does"


def require(binary: str) -> str:
    """The path of ``binary``; fails the test, saying how to install it, when it is missing."""
    found = shutil.which(binary)
    if found is None:
        pytest.fail(f"{binary} not found: {INSTALL_HINT}")
    return found
