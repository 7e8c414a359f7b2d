"""Every request file teams write today is a valid manifest unchanged, except that a
dependency names the other job instead of a shell variable.

The request files are the heredocs of the users' own guide, kept verbatim in
tests/testdata/seed/aws-batch-cli-guide.md (a plain clone holds it: nothing is read
from outside the repository)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from controller.model.desired import build_desired
from controller.model.manifests import Manifest, load_files, load_manifest, read_directory
from tests.conftest import EXAMPLES
from tests.support.paths import TESTDATA

SEED = TESTDATA / "seed" / "aws-batch-cli-guide.md"
HEREDOC = re.compile(r"cat > (?P<name>[\w.-]+\.json) << EOF\n(?P<body>.*?)\n\s*EOF", re.S)
# The shell variables of the seed's pipeline become the upstream job's name.
SUBSTITUTE = {
    "$preprocess_job_id": "preprocess-dataset-42",
    "$training_job_id": "train-model-42",
    "${{ github.sha }}": "0123abcd",
    "${{ github.repository }}": "acme/manifests",
}


def seed_examples() -> list[tuple[str, str]]:
    """(file name, body) of every heredoc'd request file in the guide, shell variables
    replaced by the upstream job's name."""
    examples = []
    for match in HEREDOC.finditer(SEED.read_text()):
        body = textwrap.dedent(match.group("body"))
        for old, new in SUBSTITUTE.items():
            body = body.replace(old, new)
        examples.append((match.group("name"), body))
    return examples


def test_seed_has_the_examples_we_expect() -> None:
    """The extraction finds every request file of the seed guide: its 10 heredocs, by
    name, in the guide's order."""
    names = [name for name, _ in seed_examples()]
    assert names == [
        "my-job-definition.json",
        "my-job-submission.json",
        "preprocess-job.json",
        "training-job.json",
        "evaluation-job.json",
        "job-array.json",
        "finance-job.json",
        "secure-job-definition.json",
        "job-submission.json",
        "tagged-job.json",
    ]


@pytest.mark.parametrize("name,body", seed_examples())
def test_each_seed_example_loads(name: str, body: str) -> None:
    """Each seed request file loads as a manifest of the right kind, unchanged."""
    loaded = load_manifest(f"seed/{name}", body.encode())
    assert isinstance(loaded, Manifest), [str(e) for e in loaded]
    expected = "job-definition" if "jobDefinitionName" in body else "job"
    assert loaded.kind == expected


def test_seed_pipeline_resolves_dependencies_by_name() -> None:
    """The three-job pipeline of the seed forms a chain ordered upstream first."""
    files = [
        (f"seed/{name}", body.encode(), "")
        for name, body in seed_examples()
        if name in ("preprocess-job.json", "training-job.json", "evaluation-job.json")
    ]
    desired = build_desired(load_files(files))
    assert not desired.errors
    order = [name for _, name in desired.submit_order()]
    assert order.index("preprocess-dataset-42") < order.index("train-model-42")
    assert order.index("train-model-42") < order.index("evaluate-model-42")
    assert desired.jobs[("gpu-job-queue", "train-model-42")].upstream == (
        ("cpu-job-queue", "preprocess-dataset-42"),
    )


def test_repository_examples_are_valid() -> None:
    """manifests/ (used by the demo) holds 8 definitions and 8 jobs, all valid."""
    desired = build_desired(load_files(read_directory(EXAMPLES)))
    assert desired.errors == []
    assert len(desired.definitions) == 8
    assert len(desired.jobs) == 8


def test_examples_include_every_seed_job() -> None:
    """Every job of the seed is among the repository's examples (the demo runs them)."""
    desired = build_desired(load_files(read_directory(EXAMPLES)))
    names = {name for _, name in desired.jobs}
    assert {
        "train-model-experiment-42",
        "preprocess-dataset-42",
        "train-model-42",
        "evaluate-model-42",
        "hyperparameter-sweep",
        "quarterly-risk-analysis",
        "monthly-report",
    } <= names
    assert Path(EXAMPLES / "teams/analytics/weekly-report.yaml").exists()
