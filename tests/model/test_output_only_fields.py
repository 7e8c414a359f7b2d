"""A file copied from `aws batch describe-*` output is told which fields are output-only
(AWS sets them; remove them) instead of "unknown field; did you mean ...", and every
name/pattern error shows the offending value."""

from __future__ import annotations

import json
from typing import Any

from controller.model.manifests import load_manifest

DEFINITION = {
    "jobDefinitionName": "etl",
    "type": "container",
    "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
}


def _errors(document: dict[str, Any]) -> dict[str, str]:
    loaded = load_manifest("copied.json", json.dumps(document, default=str).encode())
    assert isinstance(loaded, list), "accepted"
    return {e.field: e.message for e in loaded}


def test_describe_job_definitions_output_names_each_output_only_field(batch: Any) -> None:
    """A definition registered on a Batch endpoint and described back: every field the
    request does not have is reported as output-only of describe-job-definitions, with
    no 'did you mean' guess, and nothing else is reported."""
    batch.register_job_definition(**DEFINITION)
    described = batch.describe_job_definitions(jobDefinitionName="etl")["jobDefinitions"][0]
    if described.get("tags") == {}:
        del described["tags"]  # moto echoes empty tags; a request may not send {} (min 1)
    errors = _errors(described)
    assert {"jobDefinitionArn", "revision", "status"} <= set(errors)
    for field, message in errors.items():
        assert "output-only field of `aws batch describe-job-definitions` output" in message, (
            field,
            message,
        )
        assert "did you mean" not in message


def test_describe_jobs_output_points_at_the_override_a_request_sets() -> None:
    """describe-jobs fields: `container` says a request sets containerOverrides, `status`
    and `jobId` are output-only."""
    errors = _errors(
        {
            "jobName": "etl-1",
            "jobQueue": "q",
            "jobDefinition": "etl:1",
            "jobId": "6f3c1a52-1111-2222-3333-444455556666",
            "status": "SUCCEEDED",
            "container": {"image": "busybox"},
            "eksProperties": {},
        }
    )
    assert set(errors) == {"jobId", "status", "container", "eksProperties"}
    assert "'containerOverrides' instead" in errors["container"]
    assert "'eksPropertiesOverride' instead" in errors["eksProperties"]
    assert "describe-jobs" in errors["status"]


def test_a_typo_is_still_a_typo() -> None:
    """A misspelt member that no describe output has keeps its 'did you mean' hint."""
    errors = _errors({**DEFINITION, "stauts": "ACTIVE"})
    assert errors == {"stauts": "unknown field; did you mean 'status'?"} or (
        "did you mean" in errors["stauts"]
    )


def test_name_and_pattern_errors_show_the_value() -> None:
    """A bad job name, a bad definition name, a reserved tag key and an enum miss each
    quote the value the author wrote."""
    job = _errors({"jobName": "nightly report", "jobQueue": "q", "jobDefinition": "d"})
    assert "'nightly report'" in job["jobName"]
    definition = _errors({**DEFINITION, "jobDefinitionName": "-etl"})
    assert "'-etl'" in definition["jobDefinitionName"]
    tags = _errors({**DEFINITION, "tags": {"batch-gitops/owner": "me"}})
    assert "'batch-gitops/owner'" in tags["tags.batch-gitops/owner"]
    enum = _errors({**DEFINITION, "type": "containre"})
    assert "'containre'" in enum["type"] and "did you mean 'container'" in enum["type"]


def test_empty_tags_copied_from_describe_output_are_accepted() -> None:
    """`tags: {}` (as describe-jobs output echoes it) is fine in a manifest: the controller
    adds its own tags to every request, so AWS never receives an empty map."""
    request = {"jobName": "a", "jobQueue": "q", "jobDefinition": "d", "tags": {}}
    loaded = load_manifest("jobs/a.json", json.dumps(request).encode())
    assert not isinstance(loaded, list), [str(e) for e in loaded]
