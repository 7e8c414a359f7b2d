"""The house rules, checked on every run: ruff lint and format, mypy strict, the
layering contracts (import-linter, kopf-style): the pure core never reaches boto3,
git or the ledger; every test says in a docstring what outcome it checks; and a
test that skips fails the run."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A docstring that names an outcome takes a few words ("It works." does not).
MIN_DOCSTRING_WORDS = 4


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; it is part of the [test] extra")
    return found


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args: list[str]) -> None:
    """`ruff check` and `ruff format --check` report nothing on the whole repository."""
    result = subprocess.run([_tool("ruff"), *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    """mypy --strict (the [tool.mypy] settings) finds no error in controller/."""
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layering_contracts() -> None:
    """import-linter's contracts in pyproject.toml hold, transitive imports included: the
    pure core (manifests, desired, plan, records, tags, jobstatus) reaches no boto3, git,
    moto or ledger; only the AWS adapters import boto3; only the git source modules
    import GitPython."""
    result = subprocess.run([_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout, result.stdout


def test_every_test_has_a_docstring() -> None:
    """Every ``test_*`` function under tests/ has a docstring of at least a few words,
    naming the outcome it checks (the house rule; reviewers judge the words)."""
    missing = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            docstring = ast.get_docstring(node) or ""
            if node.name.startswith("test_") and len(docstring.split()) < MIN_DOCSTRING_WORDS:
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert missing == [], "tests without a docstring naming their outcome:\n" + "\n".join(missing)


SKIPPING_TESTS = """
    import pytest

    @pytest.mark.skip(reason="by mark")
    def test_marked():
        pass

    @pytest.mark.skipif(True, reason="by condition")
    def test_condition():
        pass

    def test_called():
        pytest.skip("by call")

    @pytest.fixture
    def needs_a_tool():
        pytest.skip("in a fixture")

    def test_fixture(needs_a_tool):
        pass

    @pytest.mark.xfail(reason="known", strict=True)
    def test_known_bug():
        assert False

    def test_fine():
        pass
"""


def test_a_skipped_test_fails_the_run(tmp_path: Path) -> None:
    """With the suite's hook (tests/support/no_skips.py, registered by tests/conftest.py),
    a skip by mark, by condition, by a call in the test or in a fixture, and a module
    that skips itself while collected each fail the run, naming the reason; an xfail
    stays an xfail and a passing test passes."""
    (tmp_path / "test_skips.py").write_text(textwrap.dedent(SKIPPING_TESTS))
    (tmp_path / "test_module_skip.py").write_text(
        'import pytest\n\npytest.skip("whole module", allow_module_level=True)\n'
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.support.no_skips",
            "-p",
            "no:cacheprovider",
            "--continue-on-collection-errors",
            "-q",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    counts = dict((word, int(n)) for n, word in re.findall(r"(\d+) (\w+)", summary))
    # Skips in setup (marks, fixtures) and at collection are errors; in the test, failures.
    assert counts == {"failed": 1, "passed": 1, "xfailed": 1, "errors": 4}, summary
    assert "skipped" not in summary
    for reason in ("by mark", "by condition", "by call", "in a fixture", "whole module"):
        assert f"(Skipped: {reason}); tests must not skip" in result.stdout, reason


def test_the_suite_registers_the_no_skip_hook() -> None:
    """tests/conftest.py carries the no-skip hooks, so `python -m pytest` (the README's
    and .ci/run's command) fails on any skip without extra flags."""
    from tests import conftest
    from tests.support import no_skips

    assert conftest.pytest_runtest_makereport is no_skips.pytest_runtest_makereport
    assert conftest.pytest_make_collect_report is no_skips.pytest_make_collect_report
