"""A skipped test is a failed test: this suite runs every test on every machine.

Registered by ``tests/conftest.py`` (and usable alone with ``-p tests.support.no_skips``):
a test that skips — a ``skip``/``skipif`` mark or a ``pytest.skip()`` call, in setup or
in the test itself — is reported as failed with its reason, and so is a module that
skips itself while being collected (``pytest.importorskip``, a module-level skip). Then
neither a missing tool nor a missing file can turn a run green by leaving tests out: a
tool the tests need is installed by ``.ci/run`` (apt) or the ``[test]`` extra (pip), and
a test that cannot find it fails saying what to install. ``xfail`` is left alone.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

HINT = "tests must not skip: install what it needs (.ci/run, the [test] extra) or fix it"


def _reason(longrepr: Any) -> str:
    # A skip's longrepr is (file, line, "Skipped: why").
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        report.longrepr = f"{item.nodeid} skipped ({_reason(report.longrepr)}); {HINT}"
        report.outcome = "failed"
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped:
        report.longrepr = f"{collector.nodeid} skipped ({_reason(report.longrepr)}); {HINT}"
        report.outcome = "failed"
    return report
