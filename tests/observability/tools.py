"""Finding the Prometheus binaries (Debian's ``prometheus`` package) for these tests.

Without CI they are optional (the tests skip with the install hint); with
``CI=true`` a missing binary fails the test, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

INSTALL_HINT = "install Debian's `prometheus` package (apt-get install prometheus); .ci/run does"


def require(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        message = f"{binary} not found: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return found
