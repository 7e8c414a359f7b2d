"""Team policy governs every place AWS accepts a role, image, service account, resource
amount, tag, timeout or array size, in definitions and in job overrides alike. The places
are generated from botocore's model: each is checked with a value the team may not use
(reported at that field) and one it may (not reported); a member whose name looks
governable and that nobody decided on fails the test, so a field AWS adds later cannot
slip past unnoticed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from controller.model.manifests import DefinitionOptions, JobOptions, Kind, Manifest
from controller.model.policy import (
    AMOUNT_MEMBERS,
    GOVERNED_MEMBERS,
    Policy,
    check_manifest,
    load_policy,
)
from tests.conftest import GitRepo
from tests.model.model_walk import Place, all_places, place_value
from tests.policy.test_policy_validate import run_validate

POLICY = b"""\
version: 1
teams:
  - name: fin
    paths: [""]
    jobRoleArns: ["arn:aws:iam::*:role/fin-*"]
    executionRoleArns: ["arn:aws:iam::*:role/fin-exec"]
    imageRegistries: [public.ecr.aws/fin]
    serviceAccountNames: [fin-*]
    requiredTags: [CostCenter]
    limits: {vcpus: 4, memoryMiB: 1024, gpus: 0, arraySize: 100, timeoutSeconds: 3600}
"""
TAGS = {"CostCenter": "CC-1"}

# (member) or (structure, member) -> (a value the team may not use, one it may).
VALUES: dict[str | tuple[str, str], tuple[Any, Any]] = {
    "image": ("evil.example.com/other:1", "public.ecr.aws/fin/app:1"),
    "jobRoleArn": ("arn:aws:iam::1:role/admin", "arn:aws:iam::1:role/fin-app"),
    "taskRoleArn": ("arn:aws:iam::1:role/admin", "arn:aws:iam::1:role/fin-app"),
    "executionRoleArn": ("arn:aws:iam::1:role/admin", "arn:aws:iam::1:role/fin-exec"),
    "serviceAccountName": ("cluster-admin", "fin-reader"),
    "vcpus": (96, 2),
    "memory": (1_000_000, 512),
    "resourceRequirements": (
        [{"type": "VCPU", "value": "96"}, {"type": "GPU", "value": "1"}],
        [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "512"}],
    ),
    "resources": ({"limits": {"cpu": "96", "memory": "64Gi"}}, {"limits": {"cpu": "2"}}),
    ("SubmitJobRequest", "tags"): ({"Owner": "x"}, TAGS),
    ("RegisterJobDefinitionRequest", "tags"): ({"Owner": "x"}, TAGS),
    ("JobTimeout", "attemptDurationSeconds"): (86400, 600),
    ("ArrayProperties", "size"): (5000, 10),
}
# Members whose names look governable but carry nothing a team rule is about.
NOT_GOVERNED = {
    "imagePullPolicy": "when to pull, not which image",
    "imagePullSecrets": "registry credentials; the image they pull is governed",
    "cpuArchitecture": "a platform choice, not an amount",
    "sharedMemorySize": "/dev/shm size: no team ceiling for storage",
    "sizeInGiB": "ephemeral storage: no team ceiling for storage",
    "sizeLimit": "emptyDir size: no team ceiling for storage",
    "size": "tmpfs size: no team ceiling for storage (ArrayProperties.size is governed)",
    "startTimeout": "container start wait, not the job's run time",
    "stopTimeout": "container stop grace, not the job's run time",
    "timeout": "the structure; its attemptDurationSeconds is governed",
    "propagateTags": "a switch; the tags themselves are governed",
    "consumableResource": "consumable resources (licences): no team rule for them",
    "consumableResourceList": "consumable resources (licences): no team rule for them",
    "consumableResourceProperties": "consumable resources (licences): no team rule for them",
    "consumableResourcePropertiesOverride": "consumable resources: no team rule for them",
    "quantity": "a consumable resource's amount: no team rule for them",
    "instanceType": "which instance, not how much of it the job takes",
    "instanceTypes": "which instances, not how much of them the job takes",
}
LOOKS_GOVERNABLE = re.compile(
    r"image|role|account|cpu|memory|gpu|resource|tag|size|timeout|duration|quantity|instance",
    re.IGNORECASE,
)


def _values(place: Place) -> tuple[Any, Any] | None:
    return VALUES.get((str(place.owner), str(place.member))) or VALUES.get(str(place.member))


def _governed() -> list[Place]:
    return [p for kind in ("job", "job-definition") for p in all_places(kind) if _values(p)]  # type: ignore[arg-type]


GOVERNED = _governed()


@pytest.fixture(scope="module")
def policy() -> Policy:
    loaded = load_policy(".batch-gitops/policy.yaml", POLICY)
    assert isinstance(loaded, Policy), loaded
    return loaded


def _request(place: Place, value: Any) -> dict[str, Any]:
    request = place_value(place.kind, place.path, value)
    if place.member != "tags":
        request["tags"] = dict(TAGS)
    pod = request.get("eksProperties", {}).get("podProperties")
    if isinstance(pod, dict) and place.member != "serviceAccountName":
        pod.setdefault("serviceAccountName", "fin-reader")  # else the pod runs as "default"
    for node in request.get("nodeProperties", {}).get("nodeRangeProperties", []):
        node_pod = node.get("eksProperties", {}).get("podProperties")
        if isinstance(node_pod, dict) and place.member != "serviceAccountName":
            node_pod.setdefault("serviceAccountName", "fin-reader")
    return request


def _fields(policy: Policy, kind: Kind, request: dict[str, Any]) -> list[str]:
    options = JobOptions() if kind == "job" else DefinitionOptions()
    manifest = Manifest(path="m.json", kind=kind, request=request, options=options)
    return [e.field for e in check_manifest(policy, manifest)]


@pytest.mark.parametrize("place", GOVERNED, ids=lambda p: f"{p.kind}:{p.field}")
def test_each_place_is_governed(policy: Policy, place: Place) -> None:
    """A value the team may not use at this place is reported at this field; a value it
    may use is not: the policy judges what is written at every place AWS reads it."""
    values = _values(place)
    assert values is not None
    bad, good = values
    reported = _fields(policy, place.kind, _request(place, bad))
    assert any(
        f == place.field or f.startswith((f"{place.field}.", f"{place.field}[")) for f in reported
    ), (
        place.field,
        reported,
    )
    allowed = _fields(policy, place.kind, _request(place, good))
    assert not [f for f in allowed if f.startswith(place.field)], allowed


def test_no_governable_looking_member_is_undecided() -> None:
    """Every member of either request whose name looks like a role, image, account,
    amount, tag or limit is governed or listed with the reason it is not: a member
    AWS adds later fails here, listing where it sits."""
    undecided = sorted(
        {
            f"{p.kind}:{p.field}"
            for kind in ("job", "job-definition")
            for p in all_places(kind)  # type: ignore[arg-type]
            if LOOKS_GOVERNABLE.search(str(p.member))
            and not _values(p)
            and p.member not in NOT_GOVERNED
        }
    )
    assert undecided == []
    assert {str(k) for k in VALUES if isinstance(k, str)} <= GOVERNED_MEMBERS | AMOUNT_MEMBERS
    assert len(GOVERNED) > 40  # definitions, overrides, ECS, EKS and node ranges


def test_eks_override_and_service_account_holes_are_closed(repo: GitRepo) -> None:
    """The issue's cases through `validate`: a team allowed only public.ecr.aws/fin and
    4 vCPUs cannot run evil.example.com/other with 96 CPUs through eksPropertiesOverride,
    and an EKS definition running as cluster-admin breaks serviceAccountNames."""
    repo.write(".batch-gitops/policy.yaml", POLICY.decode())
    repo.write(
        "job.json",
        {
            "jobName": "sneaky",
            "jobQueue": "eks-queue",
            "jobDefinition": "eks-job",
            "tags": TAGS,
            "eksPropertiesOverride": {
                "podProperties": {
                    "containers": [
                        {
                            "image": "evil.example.com/other:1",
                            "resources": {"limits": {"cpu": "96"}},
                        }
                    ]
                }
            },
        },
    )
    repo.write(
        "def.json",
        {
            "jobDefinitionName": "admin-pod",
            "type": "container",
            "tags": TAGS,
            "eksProperties": {
                "podProperties": {
                    "serviceAccountName": "cluster-admin",
                    "containers": [{"image": "public.ecr.aws/fin/app:1"}],
                }
            },
        },
    )
    code, body = run_validate(Path(repo.path))
    assert code == 1
    fields = {(e["path"], e["field"]) for e in body["errors"]}
    prefix = "eksPropertiesOverride.podProperties.containers[0]"
    assert fields == {
        ("job.json", f"{prefix}.image"),
        ("job.json", f"{prefix}.resources.limits.cpu"),
        ("def.json", "eksProperties.podProperties.serviceAccountName"),
    }
    messages = " ".join(e["message"] for e in body["errors"])
    assert "'cluster-admin'" in messages and "serviceAccountNames" in messages


def test_a_pod_without_a_service_account_runs_as_default(policy: Policy) -> None:
    """An EKS definition that names no service account is judged as 'default'."""
    request = {
        "jobDefinitionName": "plain-pod",
        "type": "container",
        "tags": TAGS,
        "eksProperties": {"podProperties": {"containers": [{"image": "public.ecr.aws/fin/a"}]}},
    }
    assert _fields(policy, "job-definition", request) == [
        "eksProperties.podProperties.serviceAccountName"
    ]
