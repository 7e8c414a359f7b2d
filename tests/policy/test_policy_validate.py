"""`batch-gitops validate` against a team policy: each violation class is rejected
with the file, the field, the rule and the policy line; only the offending
manifest is blocked; a broken policy blocks everything and says where it is broken;
``--policy-from REF`` reads the policy from the trusted ref, not from the PR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from controller.cli.main import main
from tests.conftest import GitRepo

POLICY = """\
version: 1
unmatched: deny
teams:
  - name: finance
    paths: [teams/finance/]
    jobQueues: [finance-*]
    jobRoleArns: ["arn:aws:iam::123456789012:role/finance-*"]
    executionRoleArns: ["arn:aws:iam::123456789012:role/ecsTaskExecutionRole"]
    imageRegistries: [123456789012.dkr.ecr.*.amazonaws.com, public.ecr.aws/finance]
    definitionNames: [risk-*]
    requiredTags: [CostCenter, Project]
    limits:
      vcpus: 4
      memoryMiB: 8192
      gpus: 0
      arraySize: 100
      timeoutSeconds: 3600
"""
# Line numbers of the rules in POLICY, as a reader of the file sees them.
LINE = {
    "jobQueues": 6,
    "jobRoleArns": 7,
    "executionRoleArns": 8,
    "imageRegistries": 9,
    "definitionNames": 10,
    "requiredTags": 11,
    "vcpus": 13,
    "memoryMiB": 14,
    "gpus": 15,
    "arraySize": 16,
    "timeoutSeconds": 17,
    "unmatched": 2,
}
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/risk:1.4"
TAGS = {"CostCenter": "CC-1", "Project": "risk"}
GOOD_DEFINITION: dict[str, Any] = {
    "jobDefinitionName": "risk-model",
    "type": "container",
    "timeout": {"attemptDurationSeconds": 600},
    "tags": TAGS,
    "containerProperties": {
        "image": ECR,
        "jobRoleArn": "arn:aws:iam::123456789012:role/finance-batch",
        "resourceRequirements": [
            {"type": "VCPU", "value": "2"},
            {"type": "MEMORY", "value": "4096"},
        ],
    },
}
GOOD_JOB: dict[str, Any] = {
    "jobName": "risk-daily",
    "jobQueue": "finance-team-queue",
    "jobDefinition": "risk-model",
    "tags": TAGS,
}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(base))
    copy.update(changes)
    return copy


def run_validate(directory: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["validate", str(directory), "-o", "json", *args])
    return result.exit_code, json.loads(result.stdout)


def write_tree(repo: GitRepo, files: dict[str, Any], policy: str = POLICY) -> None:
    repo.write(".batch-gitops/policy.yaml", policy)
    for path, content in files.items():
        repo.write(path, content)


def test_compliant_repository_is_valid(repo: GitRepo) -> None:
    """A job and definition that respect every rule validate with exit 0."""
    write_tree(
        repo,
        {"teams/finance/def.json": GOOD_DEFINITION, "teams/finance/job.json": GOOD_JOB},
    )
    code, body = run_validate(repo.path)
    assert (code, body["errors"], body["jobs"], body["definitions"]) == (0, [], 1, 1)


BAD_ROLE_DEF = _with(
    GOOD_DEFINITION,
    containerProperties={
        **GOOD_DEFINITION["containerProperties"],
        "jobRoleArn": "arn:aws:iam::123456789012:role/admin",
    },
)
BAD_EXEC_DEF = _with(
    GOOD_DEFINITION,
    containerProperties={
        **GOOD_DEFINITION["containerProperties"],
        "executionRoleArn": "arn:aws:iam::123456789012:role/admin",
    },
)
BAD_IMAGE_DEF = _with(
    GOOD_DEFINITION,
    containerProperties={**GOOD_DEFINITION["containerProperties"], "image": "evil.io/miner"},
)
BIG_MEMORY_DEF = _with(
    GOOD_DEFINITION,
    containerProperties={
        **GOOD_DEFINITION["containerProperties"],
        "resourceRequirements": [
            {"type": "VCPU", "value": "2"},
            {"type": "MEMORY", "value": "65536"},
        ],
    },
)

CASES: list[tuple[str, str, dict[str, Any], str, str, str]] = [
    # (case, file, content, field, rule, words in the message)
    (
        "queue",
        "teams/finance/job.json",
        _with(GOOD_JOB, jobQueue="gpu-job-queue"),
        "jobQueue",
        "jobQueues",
        "job queue 'gpu-job-queue' is not allowed for team 'finance'",
    ),
    (
        "job-role",
        "teams/finance/def.json",
        BAD_ROLE_DEF,
        "containerProperties.jobRoleArn",
        "jobRoleArns",
        "job role 'arn:aws:iam::123456789012:role/admin' is not allowed",
    ),
    (
        "execution-role",
        "teams/finance/def.json",
        BAD_EXEC_DEF,
        "containerProperties.executionRoleArn",
        "executionRoleArns",
        "execution role 'arn:aws:iam::123456789012:role/admin' is not allowed",
    ),
    (
        "image",
        "teams/finance/def.json",
        BAD_IMAGE_DEF,
        "containerProperties.image",
        "imageRegistries",
        "image 'evil.io/miner' is not from a registry allowed",
    ),
    (
        "definition-name",
        "teams/finance/def.json",
        _with(GOOD_DEFINITION, jobDefinitionName="payroll"),
        "jobDefinitionName",
        "definitionNames",
        "job definition 'payroll' is not allowed",
    ),
    (
        "vcpus-override",
        "teams/finance/job.json",
        _with(
            GOOD_JOB, containerOverrides={"resourceRequirements": [{"type": "VCPU", "value": "64"}]}
        ),
        "containerOverrides.resourceRequirements[0]",
        "limits.vcpus",
        "asks for 64 vCPUs; team 'finance' may use at most 4",
    ),
    (
        "memory-definition",
        "teams/finance/def.json",
        BIG_MEMORY_DEF,
        "containerProperties.resourceRequirements[1]",
        "limits.memoryMiB",
        "asks for 65536 MiB of memory; team 'finance' may use at most 8192",
    ),
    (
        "gpus",
        "teams/finance/job.json",
        _with(
            GOOD_JOB, containerOverrides={"resourceRequirements": [{"type": "GPU", "value": "8"}]}
        ),
        "containerOverrides.resourceRequirements[0]",
        "limits.gpus",
        "asks for 8 GPUs; team 'finance' may use at most 0",
    ),
    (
        "array-size",
        "teams/finance/job.json",
        _with(GOOD_JOB, arrayProperties={"size": 5000}),
        "arrayProperties.size",
        "limits.arraySize",
        "asks for 5000 array children",
    ),
    (
        "timeout",
        "teams/finance/job.json",
        _with(GOOD_JOB, timeout={"attemptDurationSeconds": 86400}),
        "timeout.attemptDurationSeconds",
        "limits.timeoutSeconds",
        "asks for 86400 seconds; team 'finance' may use at most 3600",
    ),
    (
        "required-tags",
        "teams/finance/job.json",
        _with(GOOD_JOB, tags={"CostCenter": "CC-1"}),
        "tags",
        "requiredTags",
        "missing tag(s) Project required for team 'finance'",
    ),
    (
        "unmatched",
        "teams/marketing/job.json",
        _with(GOOD_JOB),
        "",
        "unmatched",
        "no team in .batch-gitops/policy.yaml owns this path",
    ),
]


@pytest.mark.parametrize(
    ("case", "path", "content", "field", "rule", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_each_violation_class_is_rejected_precisely(
    repo: GitRepo,
    case: str,
    path: str,
    content: dict[str, Any],
    field: str,
    rule: str,
    words: str,
) -> None:
    """validate exits 1 with one error on the offending file naming its field, the
    rule, and the policy file with the rule's line; the other manifest stays valid
    unless it is the job that inherits the offending value from that definition."""
    files = {"teams/finance/def.json": GOOD_DEFINITION, "teams/finance/job.json": GOOD_JOB}
    files[path] = content
    write_tree(repo, files)
    code, body = run_validate(repo.path)
    assert code == 1
    mine = [e for e in body["errors"] if e["path"] == path]
    assert len(mine) == 1, body["errors"]
    error = mine[0]
    assert error["field"] == field
    assert f"policy {rule}:" in error["message"]
    assert words in error["message"]
    line = LINE[rule.rsplit(".", 1)[-1]]
    assert f"[.batch-gitops/policy.yaml:{line}]" in error["message"]
    # Only that manifest is blocked, and the job that inherits the broken value from it.
    others = [e for e in body["errors"] if e["path"] != path]
    assert all(
        e["path"] == "teams/finance/job.json"
        and e["field"].startswith(f"jobDefinition ({path}: ")
        and f"policy {rule}:" in e["message"]
        for e in others
    ), others


def test_job_inherits_the_definition_resources_it_names(repo: GitRepo) -> None:
    """A job without overrides is checked against what its managed definition gives
    it: a definition over the memory ceiling blocks the job too, naming the definition."""
    write_tree(
        repo,
        {"teams/finance/def.json": BIG_MEMORY_DEF, "teams/finance/job.json": GOOD_JOB},
    )
    code, body = run_validate(repo.path)
    job_errors = [e for e in body["errors"] if e["path"] == "teams/finance/job.json"]
    assert code == 1 and len(job_errors) == 1
    assert job_errors[0]["field"].startswith("jobDefinition (teams/finance/def.json: ")
    assert "65536 MiB" in job_errors[0]["message"]


def test_an_override_below_the_ceiling_wins_over_the_definition(repo: GitRepo) -> None:
    """The effective value is the override: a big definition with a small override passes
    for the job (the definition itself is still reported)."""
    job = _with(
        GOOD_JOB,
        containerOverrides={"resourceRequirements": [{"type": "MEMORY", "value": "2048"}]},
    )
    write_tree(repo, {"teams/finance/def.json": BIG_MEMORY_DEF, "teams/finance/job.json": job})
    _, body = run_validate(repo.path)
    assert [e["path"] for e in body["errors"]] == ["teams/finance/def.json"]


def test_missing_timeout_is_rejected_when_a_ceiling_exists(repo: GitRepo) -> None:
    """A ceiling on timeouts means a job must have one (its own or its definition's)."""
    definition = {k: v for k, v in GOOD_DEFINITION.items() if k != "timeout"}
    write_tree(repo, {"teams/finance/def.json": definition, "teams/finance/job.json": GOOD_JOB})
    _, body = run_validate(repo.path)
    messages = [e["message"] for e in body["errors"] if e["path"] == "teams/finance/job.json"]
    assert len(messages) == 1 and "no timeout is set" in messages[0]


def test_yaml_envelope_and_eks_resources_are_checked(repo: GitRepo) -> None:
    """The envelope form and EKS quantities (cpu '8', memory '16Gi') meet the same ceilings."""
    write_tree(
        repo,
        {
            "teams/finance/eks.yaml": """\
apiVersion: batch-gitops/v1
kind: JobDefinition
spec:
  jobDefinitionName: risk-eks
  type: container
  timeout: {attemptDurationSeconds: 60}
  tags: {CostCenter: CC-1, Project: risk}
  eksProperties:
    podProperties:
      containers:
        - image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/risk:2
          resources:
            limits: {cpu: "8", memory: 16Gi}
""",
        },
    )
    _, body = run_validate(repo.path)
    messages = sorted(e["message"] for e in body["errors"])
    assert len(messages) == 2
    assert "asks for 16384 MiB of memory" in messages[0]
    assert "asks for 8 vCPUs" in messages[1]
    # Fields are named where they sit in the file: under the envelope's spec.
    assert all(e["field"].startswith("spec.eksProperties.") for e in body["errors"])


def test_envelope_job_violations_name_fields_under_spec(repo: GitRepo) -> None:
    """An envelope job on another team's queue without its required tags: both fields are
    reported as the author wrote them (spec.jobQueue, spec.tags)."""
    envelope = {
        "apiVersion": "batch-gitops/v1",
        "kind": "Job",
        "spec": _with(GOOD_JOB, jobQueue="ml-queue", tags={"Owner": "ada"}),
    }
    write_tree(
        repo, {"teams/finance/def.json": GOOD_DEFINITION, "teams/finance/job.json": envelope}
    )
    code, body = run_validate(repo.path)
    assert code == 1
    assert sorted(e["field"] for e in body["errors"]) == ["spec.jobQueue", "spec.tags"]


def test_broken_policy_blocks_everything_and_names_its_line(repo: GitRepo) -> None:
    """A typo in the policy is reported with the policy file, field and line, and no
    manifest is valid until it is fixed (a broken policy allows nothing)."""
    broken = POLICY.replace("    limits:\n      vcpus: 4", "    limits:\n      vcpu: 4")
    write_tree(
        repo,
        {"teams/finance/def.json": GOOD_DEFINITION, "teams/finance/job.json": GOOD_JOB},
        policy=broken,
    )
    code, body = run_validate(repo.path)
    assert code == 1 and body["jobs"] == 0 and body["definitions"] == 0
    policy_errors = [e for e in body["errors"] if e["path"] == ".batch-gitops/policy.yaml"]
    assert policy_errors == [
        {
            "path": ".batch-gitops/policy.yaml",
            "field": "teams[0].limits.vcpu",
            "message": "line 13: Extra inputs are not permitted",
        }
    ]
    blocked = {e["path"] for e in body["errors"]} - {".batch-gitops/policy.yaml"}
    assert blocked == {"teams/finance/def.json", "teams/finance/job.json"}


def test_policy_from_trusted_ref_ignores_the_pull_requests_policy(repo: GitRepo) -> None:
    """On a PR branch that loosens the policy (allowing any queue), validate
    --policy-from main still enforces main's policy; without it the PR's is used."""
    write_tree(
        repo,
        {"teams/finance/def.json": GOOD_DEFINITION, "teams/finance/job.json": GOOD_JOB},
    )
    repo.commit("policy")
    repo.git("checkout", "-q", "-b", "pr")
    write_tree(
        repo,
        {"teams/finance/job.json": _with(GOOD_JOB, jobQueue="gpu-job-queue")},
        policy=POLICY.replace("jobQueues: [finance-*]", "jobQueues: ['*']"),
    )
    repo.commit("loosen the policy and use the GPU queue")
    code, body = run_validate(repo.path)
    assert (code, body["errors"]) == (0, [])
    code, body = run_validate(repo.path, "--policy-from", "main")
    assert code == 1
    assert [(e["path"], e["field"]) for e in body["errors"]] == [
        ("teams/finance/job.json", "jobQueue")
    ]
    assert "[.batch-gitops/policy.yaml@main:6]" in body["errors"][0]["message"]


def test_policy_from_unknown_ref_blocks_and_says_so(repo: GitRepo) -> None:
    """A --policy-from ref that does not exist is an error naming the ref, never 'no policy'."""
    write_tree(repo, {"teams/finance/job.json": GOOD_JOB})
    repo.commit("x")
    code, body = run_validate(repo.path, "--policy-from", "nope")
    assert code == 1 and body["jobs"] == 0
    assert any("'nope' does not exist" in e["message"] for e in body["errors"])


def test_subdirectory_paths_are_matched_from_the_repository_root(repo: GitRepo) -> None:
    """validate teams/finance inside the repository matches the policy's repo-relative
    prefixes and finds the policy at the repository root."""
    write_tree(
        repo,
        {"teams/finance/def.json": GOOD_DEFINITION, "teams/finance/job.json": GOOD_JOB},
    )
    code, body = run_validate(repo.path / "teams" / "finance")
    assert (code, body["errors"], body["jobs"]) == (0, [], 1)
    repo.write("teams/finance/job.json", _with(GOOD_JOB, jobQueue="gpu-job-queue"))
    code, body = run_validate(repo.path / "teams" / "finance")
    assert code == 1 and body["errors"][0]["path"] == "job.json"


def test_text_output_prints_file_field_rule_and_line(repo: GitRepo) -> None:
    """The human output is one line: path: field: policy rule ... [policy:line]."""
    write_tree(repo, {"teams/finance/job.json": _with(GOOD_JOB, jobQueue="gpu-job-queue")})
    result = CliRunner().invoke(main, ["validate", str(repo.path)])
    assert result.exit_code == 1
    assert result.stdout.strip() == (
        "teams/finance/job.json: jobQueue: policy jobQueues: job queue 'gpu-job-queue' is not "
        "allowed for team 'finance' (allowed: finance-*) [.batch-gitops/policy.yaml:6]"
    )


def test_unreadable_amounts_do_not_slip_under_a_ceiling(repo: GitRepo) -> None:
    """A resourceRequirements value that is not a finite number ('INFINITY', '1e400',
    'lots') is a violation of the ceiling, never a crash or a pass (found by the
    property-based test)."""
    requirements = [
        {"type": "VCPU", "value": "INFINITY"},
        {"type": "MEMORY", "value": "1e400"},
        {"type": "GPU", "value": "lots"},
    ]
    job = _with(GOOD_JOB, containerOverrides={"resourceRequirements": requirements})
    write_tree(repo, {"teams/finance/def.json": GOOD_DEFINITION, "teams/finance/job.json": job})
    code, body = run_validate(repo.path)
    assert code == 1
    rules = sorted(e["message"].split(":")[0] for e in body["errors"])
    assert rules == ["policy limits.gpus", "policy limits.memoryMiB", "policy limits.vcpus"]
    assert all("an unreadable amount of" in e["message"] for e in body["errors"])


def test_policy_file_location_is_a_setting(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCH_GITOPS_POLICY_FILE moves the policy; validate reads it from there (and the
    default location is then ignored)."""
    write_tree(repo, {"teams/finance/job.json": _with(GOOD_JOB, jobQueue="gpu-job-queue")})
    (repo.path / ".batch-gitops" / "policy.yaml").rename(repo.path / "elsewhere.txt")
    repo.write(".governance/teams.yaml", POLICY)
    code, body = run_validate(repo.path)
    assert (code, body["errors"]) == (0, [])
    monkeypatch.setenv("BATCH_GITOPS_POLICY_FILE", ".governance/teams.yaml")
    code, body = run_validate(repo.path)
    assert code == 1
    assert "[.governance/teams.yaml:6]" in body["errors"][0]["message"]
