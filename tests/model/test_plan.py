"""The planner, pure: desired state and ledger records in, actions out."""

from __future__ import annotations

import json
from functools import partial

from controller.model.desired import DesiredState, build_desired
from controller.model.manifests import load_files
from controller.model.plan import ObservedJob, ObservedState, PlanOptions, plan_actions
from controller.model.records import DefinitionRecord, JobRecord
from tests.support.manifests import envelope
from tests.support.manifests import job as make_job


def desired(files: dict[str, dict]) -> DesiredState:
    return build_desired(
        load_files((path, json.dumps(body).encode(), "") for path, body in files.items())
    )


job = partial(make_job, queue="q", definition="d")


def record(
    name: str,
    spec_hash: str,
    *,
    status: str | None = "SUCCEEDED",
    state: str = "submitted",
    queue: str = "q",
    prune: bool = True,
    retired: bool = False,
    manifest: str | None = None,
) -> ObservedJob:
    rec = JobRecord(
        token="t-" + name,
        queue=queue,
        name=name,
        manifest=manifest or f"{name}.json",
        spec_hash=spec_hash,
        revision="r" * 40,
        author="",
        committed_at=0,
        job_id="id-" + name,
        state=state,
        status=status,
        status_reason=None,
        array_summary=None,
        prune=prune,
        is_current=True,
        retired=retired,
        created_at=0,
        updated_at=0,
    )
    return ObservedJob(record=rec, status=status)


def observed(*jobs: ObservedJob, definitions: dict | None = None) -> ObservedState:
    return ObservedState(jobs={j.record.key: j for j in jobs}, definitions=definitions or {})


def summary(plan) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return [(a.action, a.name, a.reason) for a in plan.actions]


def test_new_job_is_submitted_and_unchanged_is_left_alone() -> None:
    """A job with no record is submitted ("new"); one whose recorded spec hash matches
    is left alone: the plan is exactly one submit."""
    want = desired({"a.json": job("a"), "b.json": job("b")})
    b_hash = want.jobs[("q", "b")].spec_hash
    plan = plan_actions(want, observed(record("b", b_hash)))
    assert summary(plan) == [("submit", "a", "new")]


def test_finished_job_with_same_spec_is_never_resubmitted() -> None:
    """SUCCEEDED, FAILED or forgotten by AWS, an unchanged job plans nothing."""
    want = desired({"a.json": job("a")})
    for status in ("SUCCEEDED", "FAILED", "FORGOTTEN"):
        plan = plan_actions(
            want, observed(record("a", want.jobs[("q", "a")].spec_hash, status=status))
        )
        assert plan.actions == []


def test_changed_spec_stops_active_run_then_submits() -> None:
    """A changed spec stops the active run first (cancel if queued, terminate if
    running, reason "replaced"), then submits the new spec ("changed")."""
    want = desired({"a.json": job("a"), "b.json": job("b")})
    plan = plan_actions(
        want, observed(record("a", "old", status="RUNNABLE"), record("b", "old", status="RUNNING"))
    )
    assert summary(plan) == [
        ("cancel", "a", "replaced"),
        ("terminate", "b", "replaced"),
        ("submit", "a", "changed"),
        ("submit", "b", "changed"),
    ]


def test_on_change_keep_does_not_stop_the_old_run() -> None:
    """With options.onChange: keep, a changed spec only submits; the running run stays."""
    keep = envelope(job("a"), onChange="keep")
    plan = plan_actions(desired({"a.json": keep}), observed(record("a", "old", status="RUNNING")))
    assert summary(plan) == [("submit", "a", "changed")]


def test_rerun_counter_changes_the_hash() -> None:
    """Bumping options.rerun gives the same request a new spec hash (so it runs again)."""
    plain = desired({"a.json": job("a")}).jobs[("q", "a")].spec_hash
    bumped = desired({"a.json": envelope(job("a"), rerun=1)})
    assert bumped.jobs[("q", "a")].spec_hash != plain


def test_removed_jobs_are_cancelled_or_terminated_by_state() -> None:
    """A removed queued job is cancelled, a removed STARTING job terminated, a removed
    finished job only retired (no action)."""
    plan = plan_actions(
        desired({"x.json": job("x")}),
        observed(
            record("queued", "h", status="PENDING"),
            record("running", "h", status="STARTING"),
            record("done", "h", status="SUCCEEDED"),
        ),
    )
    assert summary(plan) == [
        ("submit", "x", "new"),
        ("cancel", "queued", "removed"),
        ("terminate", "running", "removed"),
    ]
    assert plan.retire == [("q", "done")]


def test_invalid_manifest_is_not_treated_as_removed() -> None:
    """A manifest that fails validation is not a removal: its running job gets no action
    and nothing is held."""
    want = desired({"a.json": {"jobName": "a", "jobQueu": "q"}})
    assert want.invalid_paths == {"a.json"}
    plan = plan_actions(want, observed(record("a", "h", status="RUNNING", manifest="a.json")))
    assert plan.actions == [] and plan.held == []


def test_unknown_status_waits_instead_of_acting() -> None:
    """A read error means unknown, never missing: no prune, no resubmit."""
    want = desired({"a.json": job("a")})
    plan = plan_actions(
        want, observed(record("a", "old", status=None), record("gone", "h", status=None))
    )
    assert plan.actions == []
    assert set(plan.waiting) == {"q/a", "q/gone"}


def test_open_intent_is_unknown_and_rejected_submit_is_retried() -> None:
    """An open submit intent (outcome unknown) plans nothing until settled; a submit AWS
    rejected is retried ("retry")."""
    want = desired({"a.json": job("a"), "b.json": job("b")})
    plan = plan_actions(
        want,
        observed(
            record("a", "h", state="intent", status=None),
            record("b", "h", state="rejected", status=None),
        ),
    )
    assert summary(plan) == [("submit", "b", "retry")]


def test_prune_opt_out_and_no_prune_mode() -> None:
    """A job with prune: false is never stopped; with pruning off (--no-prune) a removed
    job is held with a reason naming --no-prune, and new jobs are still submitted."""
    keep = record("kept", "h", status="RUNNING", prune=False)
    assert plan_actions(desired({}), observed(keep)).actions == []
    plan = plan_actions(
        desired({"x.json": job("x")}),
        observed(record("gone", "h", status="RUNNING")),
        PlanOptions(prune=False),
    )
    assert summary(plan) == [("submit", "x", "new")]
    assert [a.name for a in plan.held] == ["gone"] and "--no-prune" in plan.held_reason


def test_mass_prune_is_held_until_acknowledged() -> None:
    """Stopping more than 10 active jobs and more than half of them waits for an ack."""
    active = [record(f"j{i}", "h", status="RUNNING") for i in range(20)]
    keep = {f"j{i}.json": job(f"j{i}") for i in range(8)}
    want = desired(keep)
    for i in range(8):
        active[i] = record(f"j{i}", want.jobs[("q", f"j{i}")].spec_hash, status="RUNNING")
    plan = plan_actions(want, observed(*active))
    assert plan.actions == [] and len(plan.held) == 12
    assert "12 of 20" in plan.held_reason
    acked = plan_actions(want, observed(*active), PlanOptions(allow_mass_prune=True))
    assert len(acked.actions) == 12 and not acked.held
    # 10 prunes is within the threshold.
    few = plan_actions(
        desired({f"j{i}.json": job(f"j{i}") for i in range(10)}), observed(*active[10:])
    )
    assert len([a for a in few.actions if a.action == "terminate"]) == 10


def test_empty_repository_never_prunes_without_ack() -> None:
    """No manifests at all while a job runs: nothing is stopped; the prune is held, and
    the reason says there are no manifests."""
    plan = plan_actions(desired({}), observed(record("a", "h", status="RUNNING")))
    assert plan.actions == [] and "no manifests at all" in plan.held_reason


def _definition(name: str, revision: int, spec_hash: str, prune: bool = True) -> DefinitionRecord:
    return DefinitionRecord(
        arn=f"arn:{name}:{revision}",
        name=name,
        revision=revision,
        manifest=f"{name}.json",
        spec_hash=spec_hash,
        commit_sha="c",
        author="",
        prune=prune,
        status="ACTIVE",
    )


def test_definitions_register_only_on_change_and_deregister_on_removal() -> None:
    """A definition is registered when new or changed and left alone when its hash
    matches; a removed definition has each revision deregistered, unless prune: false."""
    definition = {
        "jobDefinitionName": "d",
        "type": "container",
        "containerProperties": {"image": "i"},
    }
    want = desired({"d.json": definition})
    spec = want.definitions["d"].spec_hash
    assert summary(plan_actions(want, observed())) == [("register", "d", "new")]
    same = observed(definitions={"d": [_definition("d", 1, spec)]})
    assert plan_actions(want, same).actions == []
    changed = observed(definitions={"d": [_definition("d", 1, "old")]})
    assert summary(plan_actions(want, changed)) == [("register", "d", "changed")]
    removed = plan_actions(
        desired({"x.json": job("x")}),
        observed(
            definitions={
                "gone": [_definition("gone", 1, "a"), _definition("gone", 2, "b")],
                "kept": [_definition("kept", 1, "a", prune=False)],
            }
        ),
    )
    assert [(a.action, a.aws_id) for a in removed.actions if a.kind == "job-definition"] == [
        ("deregister", "arn:gone:1"),
        ("deregister", "arn:gone:2"),
    ]


def test_submit_order_puts_upstream_first() -> None:
    """Jobs come out of submit_order upstream first (a before b before c), whatever the
    order of their files."""
    want = desired(
        {
            "c.json": job("c", dependsOn=[{"jobId": "b"}]),
            "b.json": job("b", dependsOn=[{"jobId": "a"}]),
            "a.json": job("a"),
        }
    )
    assert [name for _, name in want.submit_order()] == ["a", "b", "c"]
