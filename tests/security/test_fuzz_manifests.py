"""Bad input, tried: hypothesis generates random and mutated manifests.

Properties:
- loading (and the policy) never raises, whatever the bytes;
- every rejection names the file it came from;
- whatever botocore's own ParamValidator rejects, we reject too (an independent oracle);
- a real pass (git, moto, SQLite) with generated files beside good ones submits all
  the good ones and nothing from a rejected file.
Examples are bounded so the whole module runs in seconds."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import botocore.session
import botocore.validate
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from controller.demo import backend as demo_backend
from controller.model.desired import build_desired
from controller.model.manifests import Manifest, load_files, load_manifest
from controller.model.policy import Policy, enforce, load_policy
from tests.conftest import QUEUES, GitRepo, make_controller
from tests.support.controllers import make_settings
from tests.support.manifests import definition, job

JOB: dict[str, Any] = {
    "jobName": "gen-job",
    "jobQueue": "test-queue",
    "jobDefinition": "d",
    "arrayProperties": {"size": 3},
    "timeout": {"attemptDurationSeconds": 120},
    "tags": {"CostCenter": "CC-1"},
    "containerOverrides": {
        "command": ["echo", "hi"],
        "environment": [{"name": "A", "value": "1"}],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}],
    },
}
DEFINITION: dict[str, Any] = {
    "jobDefinitionName": "gen-def",
    "type": "container",
    "tags": {"CostCenter": "CC-1"},
    "containerProperties": {
        "image": "busybox",
        "jobRoleArn": "arn:aws:iam::123456789012:role/x",
        "resourceRequirements": [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "128"},
        ],
    },
}
GOOD = {
    "defs/d.json": definition("d"),
    "jobs/good-a.json": job("good-a", definition="d"),
    "jobs/good-b.yaml": job("good-b", "cpu-job-queue", "d"),
}
POLICY = load_policy(
    "policy.yaml",
    b"""teams:
  - name: all
    paths: [""]
    jobQueues: ["*"]
    imageRegistries: [docker.io]
    requiredTags: [CostCenter]
    limits: {vcpus: 4, memoryMiB: 1024, gpus: 1, arraySize: 10, timeoutSeconds: 600}
""",
)
assert isinstance(POLICY, Policy)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A good job or definition with 1-3 mutations: tweak (same type, so often still
    valid), delete, replace with anything, rename, add."""
    doc: Any = copy.deepcopy(draw(st.sampled_from([JOB, DEFINITION])))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        operation = draw(
            st.sampled_from(["tweak", "tweak", "tweak", "delete", "replace", "rename", "add"])
        )
        current = parent[key]
        if operation == "tweak" and isinstance(current, str):
            parent[key] = draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=12))
        elif operation == "tweak" and isinstance(current, int) and not isinstance(current, bool):
            parent[key] = draw(st.integers(-5, 20_000))
        elif operation in ("tweak", "delete"):
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(values)
        elif operation == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(key)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(values)
    return doc


@st.composite
def manifest_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes): a mutated or random document as JSON or YAML, maybe corrupted."""
    doc = draw(st.one_of(mutated(), mutated(), mutated(), values))
    suffix = draw(st.sampled_from([".json", ".yaml"]))
    text = json.dumps(doc) if suffix == ".json" else yaml.safe_dump(doc, allow_unicode=True)
    raw = text.encode()
    corruption = draw(st.sampled_from(["none"] * 5 + ["truncate", "byte", "random"]))
    if corruption == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif corruption == "byte" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=2)) + raw[at:]
    elif corruption == "random":
        raw = draw(st.binary(max_size=200))
    return suffix, raw


_MODEL = botocore.session.get_session().get_service_model("batch")


def botocore_rejects(raw: bytes, suffix: str) -> bool:
    """The independent oracle: unparseable, or invalid for botocore's ParamValidator."""
    try:
        text = raw.decode("utf-8-sig")
        doc = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except Exception:
        return True
    if not isinstance(doc, dict):
        return True
    if "jobDefinitionName" in doc:
        operation = "RegisterJobDefinition"
    elif "jobName" in doc or "jobQueue" in doc:
        operation = "SubmitJob"
    else:
        return True
    shape = _MODEL.operation_model(operation).input_shape
    report = botocore.validate.ParamValidator().validate(doc, shape)
    return report.has_errors()


@settings(max_examples=300, deadline=None)
@given(manifest_file())
def test_loading_never_crashes_and_rejections_name_the_file(generated: tuple[str, bytes]) -> None:
    """load_manifest returns a Manifest or errors (never raises); every error names the
    file; whatever botocore's validator rejects is rejected; the policy never raises."""
    suffix, raw = generated
    path = f"teams/x/file{suffix}"
    loaded = load_manifest(path, raw)
    if isinstance(loaded, Manifest):
        assert not botocore_rejects(raw, suffix)
        result = enforce(POLICY, load_files([(path, raw, "")]))
        assert all(e.path == path for e in result.errors)
    else:
        assert loaded and all(e.path == path and e.message for e in loaded)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([".json", ".yaml", ".yml"]))
def test_random_bytes_never_crash(raw: bytes, suffix: str) -> None:
    """Arbitrary bytes are a Manifest or named errors, never an exception."""
    loaded = load_manifest(f"f{suffix}", raw)
    assert isinstance(loaded, Manifest) or all(e.path == f"f{suffix}" for e in loaded)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(manifest_file(), min_size=1, max_size=4))
def test_a_pass_applies_the_good_files_and_nothing_rejected(
    moto_server: demo_backend.MotoBatch, generated: list[tuple[str, bytes]]
) -> None:
    """A real pass over good files plus generated ones: never crashes, submits every
    good job, submits nothing that is not an accepted manifest, and reports every
    file botocore rejects as invalid, by path."""
    # A valid job on a queue that does not exist is not bad input but an AWS-side
    # failure (and on an empty ledger the adoption check then stops the whole pass):
    # keep to real queues so "good" and "bad" are decided by validation alone.
    for suffix, raw in generated:
        loaded = load_manifest(f"x{suffix}", raw)
        if isinstance(loaded, Manifest) and loaded.kind == "job":
            assume(loaded.request["jobQueue"] in QUEUES)
    moto_server.reset()
    demo_backend.set_mode("instant")
    moto_server.create_queues(QUEUES)
    with tempfile.TemporaryDirectory() as tmp:
        repo = GitRepo(Path(tmp) / "repo")
        for path, doc in GOOD.items():
            repo.write(path, doc if path.endswith(".json") else yaml.safe_dump(doc))
        written = {}
        for index, (suffix, raw) in enumerate(generated):
            path = f"gen/file-{index}{suffix}"
            (repo.path / "gen").mkdir(exist_ok=True)
            (repo.path / path).write_bytes(raw)
            written[path] = (suffix, raw)
        repo.commit("generated")
        controller = make_controller(make_settings(repo, Path(tmp)))
        try:
            result = controller.reconcile()
        finally:
            controller.ledger.close()
    assert result.result in ("ok", "degraded"), result.message
    assert result.desired is not None
    accepted = {key[1] for key in result.desired.jobs}
    client = moto_server.client()
    submitted = {
        job["jobName"]
        for queue in QUEUES
        for job in client.list_jobs(jobQueue=queue)["jobSummaryList"]
    }
    assert {"good-a", "good-b"} <= submitted
    assert submitted <= accepted
    for path, (suffix, raw) in written.items():
        if botocore_rejects(raw, suffix):
            assert path in result.desired.invalid_paths
    assert all(e.path in {*written, *GOOD} for e in result.errors)
    # The desired state is consistent with what validation alone says.
    offline = build_desired(load_files((p, r, "") for p, (_, r) in written.items()))
    assert offline.invalid_paths <= result.desired.invalid_paths


def test_a_non_string_field_name_is_named_not_a_crash() -> None:
    """A YAML key that is not a string (an explicit null key `?`, a number) is reported as
    a problem of that field, with the file named, instead of crashing the walk (the case
    hypothesis found)."""
    body = b"?\n0: gen-job\njobDefinition: d\njobQueue: test-queue\njobName: a\n"
    loaded = load_manifest("jobs/a.yaml", body)
    assert isinstance(loaded, list)
    assert {(e.path, e.field) for e in loaded} == {("jobs/a.yaml", "None"), ("jobs/a.yaml", "0")}
    assert all("field names are strings" in e.message for e in loaded)
