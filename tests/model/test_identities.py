"""Identities: a queue written as its name or its ARN, and a job definition written as
its name, `name:rev` or its ARN, are one identity for duplicates, dependencies and team
policy; the ledger key stays as written, so a ledger recorded before this change is
still the ledger of the same jobs (nothing is resubmitted)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.model.desired import build_desired
from controller.model.identity import (
    definition_name,
    definition_revision,
    job_identity,
    queue_name,
)
from controller.model.manifests import load_files
from controller.model.policy import Policy, enforce, load_policy
from tests.conftest import Controller, GitRepo

ARN = "arn:aws:batch:us-east-1:123456789012"


@pytest.mark.parametrize(
    ("reference", "name", "revision"),
    [
        ("trainer", "trainer", None),
        ("trainer:7", "trainer", 7),
        (f"{ARN}:job-definition/trainer:7", "trainer", 7),
        (f"{ARN}:job-definition/trainer", "trainer", None),
    ],
)
def test_definition_references_resolve_to_one_name(
    reference: str, name: str, revision: int | None
) -> None:
    """name, name:rev and the ARN name one definition; the pinned revision is kept."""
    assert (definition_name(reference), definition_revision(reference)) == (name, revision)


def test_queue_name_and_arn_are_one_queue() -> None:
    """A queue ARN reduces to its name; names and other strings are unchanged."""
    assert queue_name(f"{ARN}:job-queue/gpu") == "gpu" == queue_name("gpu")
    assert job_identity(f"{ARN}:job-queue/gpu", "train") == job_identity("gpu", "train")
    assert queue_name(f"{ARN}:job-definition/gpu:1") == f"{ARN}:job-definition/gpu:1"


def _files(files: dict[str, dict[str, Any]]) -> list[tuple[str, bytes, str]]:
    return [(path, json.dumps(body).encode(), "") for path, body in files.items()]


def test_same_job_by_queue_name_and_arn_is_a_duplicate() -> None:
    """Two manifests for job 'train', one naming queue 'gpu', one its ARN, are both
    refused as one job defined twice (the message shows both spellings)."""
    desired = build_desired(
        load_files(
            _files(
                {
                    "a.json": {"jobName": "train", "jobQueue": "gpu", "jobDefinition": "d"},
                    "b.json": {
                        "jobName": "train",
                        "jobQueue": f"{ARN}:job-queue/gpu",
                        "jobDefinition": "d",
                    },
                }
            )
        )
    )
    assert desired.jobs == {}
    assert {(e.path, e.field) for e in desired.errors} == {
        ("a.json", "jobName"),
        ("b.json", "jobName"),
    }
    assert "written as" in desired.errors[0].message and "'gpu'" in desired.errors[0].message


def test_dependency_on_a_job_whose_queue_is_an_arn_resolves() -> None:
    """dependsOn by name finds the upstream whose queue is written as an ARN; the keys
    keep the queue as written."""
    upstream_queue = f"{ARN}:job-queue/cpu"
    desired = build_desired(
        load_files(
            _files(
                {
                    "prep.json": {
                        "jobName": "prep",
                        "jobQueue": upstream_queue,
                        "jobDefinition": "d",
                    },
                    "train.json": {
                        "jobName": "train",
                        "jobQueue": "gpu",
                        "jobDefinition": "d",
                        "dependsOn": [{"jobId": "prep"}],
                    },
                }
            )
        )
    )
    assert desired.errors == []
    assert desired.jobs[("gpu", "train")].upstream == ((upstream_queue, "prep"),)


POLICY = b"""\
version: 1
teams:
  - name: fin
    paths: [""]
    jobQueues: [fin-*]
    definitionNames: [risk-*]
    limits: {vcpus: 4}
"""


@pytest.mark.parametrize(
    "reference", ["risk-model", "risk-model:3", f"{ARN}:job-definition/risk-model:3"]
)
def test_policy_follows_the_definition_however_it_is_named(reference: str) -> None:
    """A job naming its managed definition by name, name:rev or ARN is judged on what the
    definition gives it (8 vCPUs over a ceiling of 4); a queue ARN is judged by its name."""
    loaded = load_files(
        _files(
            {
                "def.json": {
                    "jobDefinitionName": "risk-model",
                    "type": "container",
                    "containerProperties": {"image": "busybox", "vcpus": 8, "memory": 512},
                },
                "job.json": {
                    "jobName": "run",
                    "jobQueue": f"{ARN}:job-queue/fin-batch",
                    "jobDefinition": reference,
                },
            }
        )
    )
    policy = load_policy("policy.yaml", POLICY)
    assert isinstance(policy, Policy)
    gated = enforce(policy, loaded)
    job_errors = [e for e in gated.errors if e.path == "job.json"]
    assert len(job_errors) == 1 and "8 vCPUs" in job_errors[0].message
    assert job_errors[0].field == "jobDefinition (def.json: containerProperties.vcpus)"


def test_existing_ledgers_keep_their_keys_and_nothing_is_resubmitted(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """Jobs written with a queue name and with a queue ARN are recorded under the queue
    as written (the key every earlier release recorded); the next pass, and a restarted
    controller on the same ledger, submit nothing."""
    repo.write(
        "defs/d.json",
        {
            "jobDefinitionName": "d",
            "type": "container",
            "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
        },
    )
    arn_queue = f"{ARN}:job-queue/test-queue"
    repo.write(
        "jobs/by-name.json", {"jobName": "by-name", "jobQueue": "test-queue", "jobDefinition": "d"}
    )
    repo.write(
        "jobs/by-arn.json", {"jobName": "by-arn", "jobQueue": arn_queue, "jobDefinition": "d"}
    )
    repo.commit("two jobs, two spellings")
    first = controller.reconcile()
    assert not first.failed, first.as_dict()
    assert set(controller.ledger.current_jobs()) == {
        ("test-queue", "by-name"),
        (arn_queue, "by-arn"),
    }
    again = controller.restart().reconcile()
    assert [r for r in again.results if r.action.action == "submit"] == []
    names = [s["jobName"] for s in batch.list_jobs(jobQueue="test-queue")["jobSummaryList"]]
    assert sorted(names) == ["by-arn", "by-name"]
