"""A SubmitJob that AWS carried out but whose reply never arrived: the connection
died after the server processed it, or the server answered 5xx after accepting
it. The controller must call the outcome unknown, never resubmit blindly, settle
it by its submission tag on the next pass, and end with one job per manifest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from controller.demo import backend as demo_backend
from tests.conftest import Controller, GitRepo, make_controller
from tests.reliability.conftest import managed_jobs, write_jobs
from tests.support.controllers import make_api, make_settings
from tests.support.fault_proxy import Fault, FaultProxy

JOBS = 40


@pytest.fixture
def proxied(
    proxy: FaultProxy, repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Controller:
    """An in-process controller whose boto3 talks to AWS through the fault proxy."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", proxy.endpoint)
    settings = make_settings(repo, tmp_path, rate_limit=1000)
    # A 2 s read timeout, so a reply held back 4 s by the proxy ("slow-after") times out.
    return make_controller(settings, make_api(read_timeout=2.0))


@pytest.mark.parametrize("fault", ["drop-after", "5xx-after", "slow-after"])
def test_lost_submit_replies_are_settled_by_tag_not_resubmitted(
    fault: Fault,
    moto: demo_backend.MotoBatch,
    proxy: FaultProxy,
    proxied: Controller,
    repo: GitRepo,
    batch: Any,
    report: Any,
) -> None:
    """Every 4th SubmitJob reaches moto but its reply is lost (connection closed, a
    500, or a reply later than the client's read timeout): pass 1 reports those
    actions "unknown"; pass 2 adopts them by tag without another SubmitJob (and
    counts them in batch_gitops_intents_settled_total{outcome="adopted"}); AWS
    ends with exactly one job per manifest and the proxy saw exactly one
    SubmitJob per manifest reach AWS."""
    expected = write_jobs(repo, JOBS)
    repo.commit("jobs")
    proxy.slow_seconds = 4.0
    proxy.rule = lambda op, n: fault if op == "SubmitJob" and n % 4 == 1 else None

    first = proxied.reconcile()
    unknown = [r for r in first.results if r.result == "unknown"]
    assert first.result == "degraded"
    assert proxy.faults()[fault] == JOBS // 4
    # Every injected fault is unknown; on a very loaded machine an unfaulted reply can
    # also outlast the read timeout, and is then unknown (and adopted) the same way.
    assert len(unknown) >= JOBS // 4
    assert all("will settle by tag" in r.message for r in unknown)
    assert len(proxied.ledger.open_intents()) == len(unknown)

    proxy.rule = None
    adopted_before = REGISTRY.get_sample_value(
        "batch_gitops_intents_settled_total", {"outcome": "adopted"}
    )
    second = proxied.reconcile()
    assert second.settled is not None and second.settled.adopted == len(unknown)
    adopted_after = REGISTRY.get_sample_value(
        "batch_gitops_intents_settled_total", {"outcome": "adopted"}
    )
    assert (adopted_after or 0) - (adopted_before or 0) == len(unknown)
    assert second.settled.lost == 0
    assert [r for r in second.results if r.action.action == "submit"] == []
    assert second.result == "ok"
    assert proxied.ledger.open_intents() == []

    found = managed_jobs(batch)
    report(
        f"fault={fault} injected={proxy.faults()[fault]} unknown after pass 1={len(unknown)} "
        f"adopted in pass 2={second.settled.adopted} SubmitJob reaching AWS="
        f"{proxy.reached_aws('SubmitJob')} jobs expected={len(expected)} "
        f"found={sum(found.values())}"
    )
    assert proxy.reached_aws("SubmitJob") == JOBS
    assert set(found) == expected and set(found.values()) == {1}
    # The ledger knows the real job ID of every adopted submission.
    ids = {r.job_id for r in proxied.ledger.current_jobs().values()}
    assert len(ids) == JOBS and None not in ids


def test_submit_refused_before_aws_is_resubmitted_once(
    moto: demo_backend.MotoBatch,
    proxy: FaultProxy,
    proxied: Controller,
    repo: GitRepo,
    batch: Any,
    report: Any,
) -> None:
    """A reset or 5xx that happened *before* AWS saw the SubmitJob is also unknown
    to the controller. Within the settle grace (ListJobs may lag) the intents stay
    open and their jobs wait; after it, settling finds no job with the token, marks
    the intents lost and the pass submits each once: one job per manifest."""
    expected = write_jobs(repo, 12)
    repo.commit("jobs")
    proxied.settings = proxied.settings.model_copy(update={"settle_grace": 1.5})
    kinds: list[Fault] = ["reset", "5xx"]
    proxy.rule = lambda op, n: kinds[n % 2] if op == "SubmitJob" and n % 3 == 0 else None
    first = proxied.reconcile()
    assert sum(r.result == "unknown" for r in first.results) == 4
    proxy.rule = None
    young = proxied.reconcile()
    assert young.settled is not None and (young.settled.unknown, young.settled.lost) == (4, 0)
    assert young.results == [] and young.plan is not None and len(young.plan.waiting) == 4
    time.sleep(1.5)
    second = proxied.reconcile()
    assert second.settled is not None and (second.settled.adopted, second.settled.lost) == (0, 4)
    assert sorted(r.action.reason for r in second.results) == ["retry"] * 4
    assert proxied.reconcile().results == []
    found = managed_jobs(batch)
    report(f"refused before AWS={proxy.faults()} jobs expected={len(expected)} found={len(found)}")
    assert set(found) == expected and set(found.values()) == {1}


@pytest.mark.parametrize("fault", ["drop-after", "5xx-after"])
def test_lost_register_reply_is_adopted_not_registered_twice(
    fault: Fault,
    moto: demo_backend.MotoBatch,
    proxy: FaultProxy,
    proxied: Controller,
    repo: GitRepo,
    batch: Any,
    report: Any,
) -> None:
    """RegisterJobDefinition reaches AWS but its reply is lost: it is not retried blindly
    (botocore's retries are off for it); the controller looks the revision up by its
    spec-hash tag, adopts it and submits the jobs against it, in the same pass. AWS
    ends with exactly one revision."""
    expected = write_jobs(repo, 4)
    repo.commit("jobs")
    proxy.rule = lambda op, n: fault if op == "RegisterJobDefinition" and n == 0 else None
    result = proxied.reconcile()
    assert result.result == "ok", result.as_dict()
    revisions = batch.describe_job_definitions(jobDefinitionName="worker")["jobDefinitions"]
    report(
        f"register fault={fault} RegisterJobDefinition reaching AWS="
        f"{proxy.reached_aws('RegisterJobDefinition')} revisions={len(revisions)}"
    )
    assert proxy.reached_aws("RegisterJobDefinition") == 1
    assert [d["revision"] for d in revisions] == [1]
    assert set(managed_jobs(batch)) == expected
