"""The team policy in real passes (real git repo, boto3 over HTTP to moto, SQLite):
a violating manifest is never submitted while the good ones are, a job that starts
violating is never pruned, and ``plan`` with ``policy_from`` uses the trusted ref."""

from __future__ import annotations

import json
from typing import Any

import structlog
from prometheus_client import REGISTRY

from controller.demo import backend as demo_backend
from controller.engine.reconcile import run_pass
from controller.model.jobstatus import ACTIVE_STATUSES
from controller.source.repository import make_source
from tests.conftest import Controller, GitRepo, WriteCounter
from tests.policy.test_policy_validate import GOOD_DEFINITION, GOOD_JOB, POLICY, _with
from tests.support.aws import job_names

JOB = GOOD_JOB
DEFINITION = "teams/finance/def.json"


def submitted_names(batch: Any) -> set[str]:
    """The names of the jobs AWS holds in the finance team's queue."""
    return set(job_names(batch, "finance-team-queue"))


def test_violating_manifest_is_skipped_and_the_good_one_applied(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """One pass: the compliant job is submitted, the one on a forbidden queue is not;
    the pass is degraded, its error names file, field and policy line, and the
    policy-violations gauge says 1."""
    repo.write(".batch-gitops/policy.yaml", POLICY)
    repo.write(DEFINITION, GOOD_DEFINITION)
    repo.write("teams/finance/good.json", JOB)
    repo.write("teams/finance/greedy.json", _with(JOB, jobName="greedy", jobQueue="gpu-job-queue"))
    repo.commit("two jobs")
    result = controller.reconcile()
    assert result.result == "degraded"
    assert submitted_names(batch) == {"risk-daily"}
    assert batch.list_jobs(jobQueue="gpu-job-queue")["jobSummaryList"] == []
    assert [(e.path, e.field) for e in result.errors] == [("teams/finance/greedy.json", "jobQueue")]
    assert "[.batch-gitops/policy.yaml:6]" in result.errors[0].message
    assert REGISTRY.get_sample_value("batch_gitops_policy_violations") == 1


def test_a_running_job_that_starts_violating_is_not_pruned(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """A job submitted before the policy existed, still running, is not cancelled
    when a new policy rejects its manifest: an invalid manifest is never a removal."""
    demo_backend.set_mode("hold")
    repo.write(DEFINITION, GOOD_DEFINITION)
    repo.write("teams/finance/good.json", JOB)
    repo.commit("job")
    assert controller.reconcile().result == "ok"
    assert submitted_names(batch) == {"risk-daily"}
    repo.write(
        ".batch-gitops/policy.yaml", POLICY.replace("jobQueues: [finance-*]", "jobQueues: []")
    )
    repo.commit("policy that forbids every queue")
    counter = WriteCounter(controller.api)
    result = controller.reconcile()
    assert result.result == "degraded" and result.desired is not None
    assert "teams/finance/good.json" in result.desired.invalid_paths
    assert counter.writes == []
    jobs = batch.list_jobs(jobQueue="finance-team-queue")["jobSummaryList"]
    [status] = [j["status"] for j in jobs if j["jobName"] == "risk-daily"]
    assert status in ACTIVE_STATUSES  # still on its way, not stopped
    assert result.plan is not None and result.plan.actions == []


def test_plan_with_policy_from_uses_the_trusted_ref(controller: Controller, repo: GitRepo) -> None:
    """A dry-run pass of a PR branch that loosens the policy plans its forbidden job,
    unless the policy is read from main (policy_from), when it is an error instead."""
    repo.write(".batch-gitops/policy.yaml", POLICY)
    repo.write(DEFINITION, GOOD_DEFINITION)
    repo.commit("policy")
    repo.git("checkout", "-q", "-b", "pr")
    repo.write(
        ".batch-gitops/policy.yaml", POLICY.replace("jobQueues: [finance-*]", "jobQueues: ['*']")
    )
    repo.write("teams/finance/gpu.json", _with(JOB, jobQueue="gpu-job-queue"))
    repo.commit("PR")
    pr = controller.settings.model_copy(update={"branch": "pr"})
    loose = run_pass(pr, make_source(pr), controller.api, controller.ledger, dry_run=True)
    assert loose.errors == [] and loose.plan is not None and len(loose.plan.actions) == 2
    trusted = pr.model_copy(update={"policy_from": "main"})
    strict = run_pass(
        trusted, make_source(trusted), controller.api, controller.ledger, dry_run=True
    )
    assert strict.plan is not None
    assert [a.kind for a in strict.plan.actions] == ["job-definition"]
    assert [(e.path, e.field) for e in strict.errors] == [("teams/finance/gpu.json", "jobQueue")]
    assert "policy.yaml@main:6" in strict.errors[0].message


def test_policy_from_is_fetched_for_a_remote_source(
    controller: Controller, repo: GitRepo, batch: Any
) -> None:
    """With a git URL as source (a bare mirror that holds only the applied branch),
    policy_from=main is fetched from the remote: the PR branch's looser policy is
    ignored; a trusted branch that cannot be fetched blocks every manifest, loudly."""
    repo.write(".batch-gitops/policy.yaml", POLICY)
    repo.write(DEFINITION, GOOD_DEFINITION)
    repo.commit("policy")
    repo.git("checkout", "-q", "-b", "pr")
    repo.write(
        ".batch-gitops/policy.yaml", POLICY.replace("jobQueues: [finance-*]", "jobQueues: ['*']")
    )
    repo.write("teams/finance/gpu.json", _with(JOB, jobQueue="gpu-job-queue"))
    repo.commit("PR")
    settings = controller.settings.model_copy(
        update={"repo": f"file://{repo.path}", "branch": "pr", "policy_from": "main"}
    )
    first = run_pass(settings, make_source(settings), controller.api, controller.ledger)
    assert [(e.path, e.field) for e in first.errors] == [("teams/finance/gpu.json", "jobQueue")]
    assert "policy.yaml@main:6" in first.errors[0].message
    assert batch.list_jobs(jobQueue="gpu-job-queue")["jobSummaryList"] == []
    missing = settings.model_copy(update={"policy_from": "no-such-branch"})
    refused = run_pass(missing, make_source(missing), controller.api, controller.ledger)
    assert refused.desired is not None and refused.desired.jobs == {}
    assert any("cannot fetch the trusted branch" in e.message for e in refused.errors)


def test_plan_command_with_policy_from(controller: Controller, repo: GitRepo) -> None:
    """`batch-gitops plan --policy-from main` on the PR branch exits 1 and lists the
    violation, where the PR's own (looser) policy would have let it through."""
    from click.testing import CliRunner

    from controller.cli.main import main

    repo.write(".batch-gitops/policy.yaml", POLICY)
    repo.write(DEFINITION, GOOD_DEFINITION)
    repo.commit("policy")
    repo.git("checkout", "-q", "-b", "pr")
    repo.write(
        ".batch-gitops/policy.yaml", POLICY.replace("jobQueues: [finance-*]", "jobQueues: ['*']")
    )
    repo.write("teams/finance/gpu.json", _with(JOB, jobQueue="gpu-job-queue"))
    repo.commit("PR")
    args = ["plan", "--repo", str(repo.path), "--branch", "pr", "-o", "json"]
    args += ["--state", str(controller.settings.state)]
    try:
        loose = CliRunner().invoke(main, args)
        strict = CliRunner().invoke(main, [*args, "--policy-from", "main"])
    finally:
        structlog.reset_defaults()  # the command bound logging to CliRunner's stream
    assert loose.exit_code == 2, loose.output
    assert strict.exit_code == 1, strict.output
    errors = json.loads(strict.stdout)["errors"]
    assert [(e["path"], e["field"]) for e in errors] == [("teams/finance/gpu.json", "jobQueue")]
