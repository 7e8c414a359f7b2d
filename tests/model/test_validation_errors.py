"""Every class of bad input is rejected with the file, the field path and a hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import main
from controller.model.desired import build_desired
from controller.model.manifests import Manifest, ManifestError, load_files, load_manifest
from tests.support.manifests import job

JOB = job("train", "q", "d")


def errors_of(path: str, content: str | dict) -> list[ManifestError]:
    raw = content if isinstance(content, str) else json.dumps(content)
    loaded = load_manifest(path, raw.encode())
    assert not isinstance(loaded, Manifest), "expected the manifest to be rejected"
    return loaded


def test_typo_in_field_names_the_field_and_suggests_the_right_one() -> None:
    """`jobQueu` is unknown; the message points at jobQueue and the file."""
    errors = errors_of("jobs/a.json", {"jobName": "a", "jobQueu": "q", "jobDefinition": "d"})
    fields = {e.field: e.message for e in errors}
    assert "did you mean 'jobQueue'" in fields["jobQueu"]
    assert fields["jobQueue"] == "required field is missing"
    assert all(e.path == "jobs/a.json" for e in errors)


def test_nested_typo_has_the_full_path() -> None:
    """A typo deep inside containerOverrides is reported with its JSON path."""
    bad = {**JOB, "containerOverrides": {"environment": [{"name": "A", "valeu": "1"}]}}
    [error] = errors_of("jobs/a.json", bad)
    assert error.field == "containerOverrides.environment[0].valeu"
    assert "did you mean 'value'" in error.message


def test_wrong_type_is_named() -> None:
    """A string where AWS wants an integer is rejected, as the AWS CLI would."""
    bad = {
        "jobDefinitionName": "d",
        "type": "container",
        "containerProperties": {"image": "i", "vcpus": "4"},
    }
    [error] = errors_of("defs/d.json", bad)
    assert error.field == "containerProperties.vcpus"
    assert "must be an integer" in error.message


def test_missing_required_field() -> None:
    """SubmitJob needs jobDefinition; botocore's model says so and so do we."""
    [error] = errors_of("jobs/a.yaml", "jobName: a\njobQueue: q\n")
    assert (error.field, error.message) == ("jobDefinition", "required field is missing")


def test_enum_value_is_checked_with_hint() -> None:
    """dependsOn type must be N_TO_N or SEQUENTIAL."""
    bad = {**JOB, "dependsOn": [{"jobId": "x", "type": "SEQUENTAIL"}]}
    [error] = errors_of("jobs/a.json", bad)
    assert error.field == "dependsOn[0].type"
    assert "SEQUENTIAL" in error.message


@pytest.mark.parametrize(
    "path,content,needle",
    [
        ("a.json", '{"jobName": "a",', "invalid JSON at line 1"),
        ("a.yaml", "jobName: [a\n", "invalid YAML at line"),
        ("a.yaml", "!!python/object/apply:os.system ['true']\n", "invalid YAML"),
        ("a.yaml", "jobName: a\n---\njobName: b\n", "several YAML documents"),
        ("a.json", "[1, 2]", "must be an object, not list"),
        ("a.json", '{"foo": 1}', "cannot tell the kind"),
        ("a.json", b"\xff\xfe".decode("latin-1"), "invalid JSON"),
    ],
)
def test_unparseable_files(path: str, content: str, needle: str) -> None:
    """Syntax errors, unsafe YAML tags and non-objects are errors naming the file."""
    errors = errors_of(path, content)
    assert any(needle in e.message for e in errors), errors
    assert all(e.path == path for e in errors)


def test_non_utf8_is_rejected() -> None:
    """Bytes that are not UTF-8 are an error saying so, not a crash or a mojibake job."""
    loaded = load_manifest("a.json", b'{"jobName": "\xff"}')
    assert isinstance(loaded, list) and "not UTF-8" in loaded[0].message


def test_reserved_tags_and_bad_names() -> None:
    """Our tag prefix is reserved; names AWS would refuse are refused here first."""
    bad = {**JOB, "jobName": "-bad name", "tags": {"batch-gitops/revision": "x"}}
    fields = {e.field for e in errors_of("a.json", bad)}
    assert fields == {"jobName", "tags.batch-gitops/revision"}


def test_envelope_errors() -> None:
    """The envelope's apiVersion, kind and options are validated too."""
    errors = errors_of("a.yaml", "apiVersion: v2\nkind: Jobb\nspec: {}\n")
    assert {e.field for e in errors} == {"apiVersion", "kind"}
    errors = errors_of(
        "a.yaml",
        "apiVersion: batch-gitops/v1\nkind: Job\n"
        "spec: {jobName: a, jobQueue: q, jobDefinition: d}\n"
        "options: {onChange: explode, prnue: false}\n",
    )
    assert {e.field for e in errors} == {"options.onChange", "options.prnue"}
    errors = errors_of(
        "a.yaml",
        "apiVersion: batch-gitops/v1\nkind: Job\n"
        "spec: {jobName: a, jobQueu: q, jobDefinition: d}\n",
    )
    assert "spec.jobQueu" in {e.field for e in errors}


def test_envelope_loads() -> None:
    """A YAML envelope with valid options loads as a job carrying its options (rerun 2)."""
    loaded = load_manifest(
        "a.yaml",
        b"apiVersion: batch-gitops/v1\nkind: Job\n"
        b"spec: {jobName: a, jobQueue: q, jobDefinition: d}\n"
        b"options: {onChange: keep, rerun: 2}\n",
    )
    assert isinstance(loaded, Manifest)
    assert loaded.kind == "job" and loaded.options.rerun == 2  # type: ignore[union-attr]


def _desired(files: dict[str, dict]) -> list[ManifestError]:
    return build_desired(
        load_files((path, json.dumps(body).encode(), "") for path, body in files.items())
    ).errors


def test_duplicate_job_names_in_one_queue_name_both_files() -> None:
    """Two files with one (queue, jobName) are both errors, each naming both files."""
    errors = _desired({"a.json": JOB, "b.json": JOB})
    assert {e.path for e in errors} == {"a.json", "b.json"}
    assert "a.json, b.json" in errors[0].message


def test_same_name_in_two_queues_is_fine() -> None:
    """The same jobName in two queues is two identities: no error."""
    assert _desired({"a.json": JOB, "b.json": {**JOB, "jobQueue": "other"}}) == []


def test_dependency_cycle_names_the_files() -> None:
    """A dependency cycle is an error on its members naming the other file; a job that
    depends on a member is an error naming the invalid upstream job."""
    errors = _desired(
        {
            "a.json": {**JOB, "jobName": "a", "dependsOn": [{"jobId": "b"}]},
            "b.json": {**JOB, "jobName": "b", "dependsOn": [{"jobId": "a"}]},
            "c.json": {**JOB, "jobName": "c", "dependsOn": [{"jobId": "a"}]},
        }
    )
    messages = {e.path: e.message for e in errors}
    assert "dependency cycle" in messages["a.json"] and "b.json" in messages["a.json"]
    assert "upstream job 'a' is not valid" in messages["c.json"]


def test_unknown_dependency_name_and_literal_ids() -> None:
    """A name that is no manifest and no AWS job ID is a typo; a real ID passes."""
    errors = _desired({"a.json": {**JOB, "dependsOn": [{"jobId": "preprocess-dataset-43"}]}})
    assert "neither a job of this repository nor an AWS job ID" in errors[0].message
    literal = "4f9c3a5e-1b2c-4d5e-8f90-123456789abc"
    assert _desired({"a.json": {**JOB, "dependsOn": [{"jobId": literal}]}}) == []


def test_ambiguous_dependency() -> None:
    """A dependency on a name that exists in several queues is an error on the
    dependent file, saying the name is in several queues."""
    errors = _desired(
        {
            "a.json": {**JOB, "jobName": "up"},
            "b.json": {**JOB, "jobName": "up", "jobQueue": "q2"},
            "c.json": {**JOB, "jobName": "down", "dependsOn": [{"jobId": "up"}]},
        }
    )
    assert errors[0].path == "c.json" and "several queues" in errors[0].message


def test_validate_command_prints_path_field_message(tmp_path: Path) -> None:
    """`validate DIR` prints one `path: field: message` line per problem, exit 1."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "bad.json").write_text(json.dumps({**JOB, "jobQueu": "x"}))
    (tmp_path / "jobs" / "good.yaml").write_text("jobName: g\njobQueue: q\njobDefinition: d\n")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "ci.yaml").write_text("on: push\n")
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "jobs/bad.json: jobQueu: unknown field; did you mean 'jobQueue'?" in result.output
    ok = CliRunner().invoke(main, ["validate", str(tmp_path / "jobs"), "-o", "json"])
    assert json.loads(ok.output)["errors"][0]["path"] == "bad.json"
    (tmp_path / "jobs" / "bad.json").unlink()
    assert CliRunner().invoke(main, ["validate", str(tmp_path)]).exit_code == 0
