"""The deployment files, validated offline: the kustomize base rendered by a real
kustomize (``kubectl kustomize``) and every resource checked against the Kubernetes
OpenAPI JSON schemas bundled by ``kubernetes-validate`` (strict: unknown fields
fail); the two Prometheus Operator custom resources against a structural schema of
the fields their CRDs define; the ECS task definition against botocore's
``ecs`` RegisterTaskDefinition input shape; yamllint and a JSON parse for every
file in ``deploy/``; and every ``BATCH_GITOPS_*`` variable against the Settings."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import jsonschema
import kubernetes_validate
import pytest
import yaml

from controller.model.manifests import validate_request
from controller.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30.0"

# Structural schemas of the monitoring.coreos.com/v1 fields we use, transcribed from
# the prometheus-operator CRDs (ServiceMonitor.spec.endpoints, PrometheusRule
# .spec.groups[].rules[]); unknown fields are rejected as a strict validator would.
_RULE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "alert": {"type": "string"},
        "record": {"type": "string"},
        "expr": {"type": ["string", "integer"]},
        "for": {
            "type": "string",
            "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?"
            r"(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
        },
        "keep_firing_for": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
}
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {
                        "type": "object",
                        "properties": {"matchLabels": {"type": "object"}},
                    },
                    "namespaceSelector": {"type": "object"},
                    "jobLabel": {"type": "string"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string"},
                                "scrapeTimeout": {"type": "string"},
                                "scheme": {"enum": ["http", "https"]},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name", "rules"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "interval": {"type": "string"},
                                "limit": {"type": "integer"},
                                "partial_response_strategy": {"type": "string"},
                                "labels": {"type": "object"},
                                "rules": {"type": "array", "items": _RULE},
                            },
                        },
                    }
                },
            },
        },
    },
}


def _kustomize() -> list[str]:
    for candidate in (["kubectl", "kustomize"], ["kustomize", "build"]):
        if shutil.which(candidate[0]):
            return candidate
    pytest.fail("neither kubectl nor kustomize is installed: .ci/run installs kubectl")


def render_base() -> list[dict[str, Any]]:
    result = subprocess.run([*_kustomize(), str(BASE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render_base()


def _by_kind(rendered: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [doc for doc in rendered if doc["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


def test_kustomization_renders_every_resource(rendered: list[dict[str, Any]]) -> None:
    """kustomize renders the base into the namespace with the expected resources."""
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "PodDisruptionBudget",
            "Deployment",
            "Service",
            "ServiceMonitor",
            "PrometheusRule",
        ]
    )
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "batch-gitops", doc["kind"]


def test_rendered_resources_match_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    """Every built-in resource validates strictly against the Kubernetes JSON schemas
    (offline, bundled by kubernetes-validate); each custom resource against its
    structural schema. A field typo anywhere fails here."""
    checked = 0
    for doc in rendered:
        if doc["kind"] in CRD_SCHEMAS:
            jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked == len(rendered) == 7


def test_example_secrets_match_kubernetes_schemas() -> None:
    """The Secret examples the Deployment references validate, and carry the keys it reads."""
    docs = list(yaml.safe_load_all((BASE / "secret.example.yaml").read_text()))
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    git = next(d for d in docs if d["metadata"]["name"] == "batch-gitops-git")
    assert {"ssh-privatekey", "known_hosts"} <= set(git["stringData"])


def test_schema_check_catches_a_typo(rendered: list[dict[str, Any]]) -> None:
    """The validator is not a rubber stamp: a misspelt Deployment field is rejected."""
    deployment = json.loads(json.dumps(_by_kind(rendered, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    monitor = json.loads(json.dumps(_by_kind(rendered, "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, CRD_SCHEMAS["ServiceMonitor"])


def test_deployment_runs_two_replicas_on_the_shared_ledger(rendered: list[dict[str, Any]]) -> None:
    """Two replicas on the DynamoDB ledger the IAM policy grants (the lease in its table),
    no volume for state, a rolling update that never goes below two, a disruption budget
    that keeps one; probes on /healthz and /readyz, requests, read-only root filesystem
    with emptyDirs for the git cache and /tmp, seccomp RuntimeDefault, non-root, and the
    IRSA-annotated ServiceAccount."""
    deployment = _by_kind(rendered, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # State lives in DynamoDB: nothing but scratch space and secrets is mounted.
    assert not any("persistentVolumeClaim" in v for v in volumes.values())
    assert not [doc for doc in rendered if doc["kind"] == "PersistentVolumeClaim"]
    for directory in (env["BATCH_GITOPS_WORKDIR"]["value"], env["HOME"]["value"]):
        assert "emptyDir" in volumes[mounts[directory]], directory
    assert env["BATCH_GITOPS_LISTEN"]["value"].endswith(":8080")
    # botocore 1.x reads AWS_DEFAULT_REGION; AWS_REGION alone leaves boto3 without a region.
    assert env["AWS_DEFAULT_REGION"]["value"]
    # The shared ledger (and the lease, in its table) is the table deploy/iam-policy.json grants.
    state = env["BATCH_GITOPS_STATE"]["value"]
    assert state.startswith("dynamodb://") and "BATCH_GITOPS_LEASE_TABLE" not in env
    Settings(state=state)
    policy = json.loads((DEPLOY / "iam-policy.json").read_text())
    ledger_resources = json.dumps(
        [
            st["Resource"]
            for st in policy["Statement"]
            if "dynamodb:ConditionCheckItem" in st["Action"]
        ]
    )
    assert f'table/{state.removeprefix("dynamodb://")}"' in ledger_resources
    assert env["BATCH_GITOPS_HOLDER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    budget = _by_kind(rendered, "PodDisruptionBudget")
    assert budget["spec"]["selector"] == spec["selector"]
    assert 0 < budget["spec"]["minAvailable"] < spec["replicas"]
    account = _by_kind(rendered, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    secrets |= {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert (
        "batch-gitops-git" in secrets
    )  # the webhook's is opt-in: tests/ship/test_webhook_component.py


def test_prometheusrule_is_generated_from_alerts() -> None:
    """prometheusrule.yaml is exactly what render_prometheusrule.py makes of
    deploy/prometheus/alerts.yml, so the two cannot drift."""
    spec = importlib.util.spec_from_file_location(
        "render_prometheusrule", BASE / "render_prometheusrule.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ALERTS.exists(), f"{module.ALERTS} is missing"
    expected = module.render(module.ALERTS.read_text())
    assert (BASE / "prometheusrule.yaml").read_text() == expected, (
        "deploy/kubernetes/prometheusrule.yaml is stale: "
        "run python3 deploy/kubernetes/render_prometheusrule.py"
    )


def test_ecs_task_definition_is_a_valid_request() -> None:
    """deploy/ecs/task-definition.json is an ECS RegisterTaskDefinition request botocore
    accepts, with the health check, read-only root filesystem and non-root user."""
    document = json.loads((DEPLOY / "ecs" / "task-definition.json").read_text())
    shape = (
        botocore.session.get_session()
        .get_service_model("ecs")
        .operation_model("RegisterTaskDefinition")
        .input_shape
    )
    problems = list(validate_request(document, shape))
    assert problems == []
    container = document["containerDefinitions"][0]
    assert container["healthCheck"]["command"] == [
        "CMD",
        "python",
        "-m",
        "controller.service.healthcheck",
    ]
    assert container["readonlyRootFilesystem"] is True
    assert not container["user"].startswith(("0", "root"))
    assert document["requiresCompatibilities"] == ["FARGATE"]
    names = {e["name"] for e in container["environment"]}
    assert "AWS_DEFAULT_REGION" in names
    env = {e["name"]: e.get("value") for e in container["environment"]}
    assert env["BATCH_GITOPS_STATE"].startswith("dynamodb://")  # no volume holds state
    assert all(m["containerPath"] != "/var/lib/batch-gitops" for m in container["mountPoints"])


def test_ecs_service_runs_two_tasks() -> None:
    """deploy/ecs/service.json is an ECS CreateService request botocore accepts: two tasks
    of the task definition's family, a rolling deployment that keeps one running."""
    service = json.loads((DEPLOY / "ecs" / "service.json").read_text())
    shape = (
        botocore.session.get_session()
        .get_service_model("ecs")
        .operation_model("CreateService")
        .input_shape
    )
    assert list(validate_request(service, shape)) == []
    task = json.loads((DEPLOY / "ecs" / "task-definition.json").read_text())
    assert service["taskDefinition"] == task["family"]
    assert service["desiredCount"] == 2
    assert service["deploymentConfiguration"]["minimumHealthyPercent"] <= 50
    assert service["deploymentConfiguration"]["maximumPercent"] >= 100


def test_every_batch_gitops_variable_is_a_setting() -> None:
    """Every BATCH_GITOPS_* variable set by the Deployment, the ECS task definition and
    the Dockerfile names a field of Settings (a renamed setting breaks this test)."""
    names: dict[str, str] = {}
    deployment = yaml.safe_load((BASE / "deployment.yaml").read_text())
    for env in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        names[env["name"]] = "deploy/kubernetes/deployment.yaml"
    task = json.loads((DEPLOY / "ecs" / "task-definition.json").read_text())
    for env in task["containerDefinitions"][0]["environment"]:
        names[env["name"]] = "deploy/ecs/task-definition.json"
    for secret in task["containerDefinitions"][0].get("secrets", []):
        names[secret["name"]] = "deploy/ecs/task-definition.json"
    for line in (ROOT / "Dockerfile").read_text().split():
        if line.startswith("BATCH_GITOPS_"):
            names[line.split("=", 1)[0]] = "Dockerfile"
    fields = {f"BATCH_GITOPS_{name.upper()}" for name in Settings.model_fields}
    ours = {name: where for name, where in names.items() if name.startswith("BATCH_GITOPS_")}
    assert len(ours) >= 5
    unknown = {name: where for name, where in ours.items() if name not in fields}
    assert unknown == {}, f"not settings: {unknown}"


# yamllint's defaults, relaxed for what deploy/ legitimately holds: PromQL
# expressions are long single lines, and flow mappings ({ a: b }) read well in
# alert rule tests. Syntax, duplicate keys, indentation and trailing spaces stay errors.
YAMLLINT_CONFIG = """
extends: default
rules:
  line-length: {max: 220}
  document-start: disable
  truthy: {check-keys: false}
  comments: {min-spaces-from-content: 1}
  braces: {max-spaces-inside: 1}
  brackets: {max-spaces-inside: 1}
  indentation: {indent-sequences: consistent}
"""


def test_yamllint_and_json_for_everything_in_deploy(tmp_path: Path) -> None:
    """yamllint finds no problem in any YAML file under deploy/, and every JSON file
    there parses."""
    yaml_files = sorted(
        str(p) for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
    )
    assert len(yaml_files) >= 7
    config = tmp_path / "yamllint.yaml"
    config.write_text(YAMLLINT_CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "-f", "parsable", "-c", str(config), *yaml_files],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    json_files = [p for p in DEPLOY.rglob("*.json") if p.is_file()]
    assert json_files
    for path in json_files:
        json.loads(path.read_text())
