"""The Kubernetes base starts as shipped (issue 15): it references no Secret it does not
contain unless the reference is optional, and POST /webhook with its Secret is an opt-in
kustomize component that an overlay adds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.ship.test_deploy import BASE, KUBERNETES_VERSION, _kustomize, render_base


def _deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [deployment] = [doc for doc in docs if doc["kind"] == "Deployment"]
    return deployment


def _shipped_secrets(docs: list[dict[str, Any]]) -> set[str]:
    return {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Secret"}


def test_base_references_only_secrets_it_ships_or_marks_optional() -> None:
    """Every Secret the base Deployment mounts or reads is in the base or optional: a bare
    `kubectl apply -k deploy/kubernetes` does not leave the pod waiting for one."""
    docs = render_base()
    pod = _deployment(docs)["spec"]["template"]["spec"]
    shipped = _shipped_secrets(docs)
    required = [
        volume["secret"]["secretName"]
        for volume in pod["volumes"]
        if "secret" in volume and not volume["secret"].get("optional")
    ]
    for container in pod["containers"]:
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                required.append(ref["name"])
    assert [name for name in required if name not in shipped] == []
    env = {e["name"] for e in pod["containers"][0]["env"]}
    assert "BATCH_GITOPS_WEBHOOK_SECRET_FILE" not in env  # no file to point at without it


def test_webhook_component_adds_the_secret_mount_and_variable(tmp_path: Path) -> None:
    """An overlay of the base plus deploy/kubernetes/webhook renders a Deployment whose
    BATCH_GITOPS_WEBHOOK_SECRET_FILE lies in the mounted batch-gitops-webhook Secret, and
    that Deployment still validates strictly against the Kubernetes schema."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base = os.path.relpath(BASE, overlay)  # kustomize refuses absolute paths
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [base], "components": [f"{base}/webhook"]})
    )
    result = subprocess.run(
        [*_kustomize(), str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    deployment = _deployment([doc for doc in yaml.safe_load_all(result.stdout) if doc])
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    [volume] = [
        v
        for v in pod["volumes"]
        if v.get("secret", {}).get("secretName") == ("batch-gitops-webhook")
    ]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert env["BATCH_GITOPS_WEBHOOK_SECRET_FILE"].startswith(mount["mountPath"] + "/")
    assert mount["readOnly"] is True and volume["secret"]["defaultMode"] == 0o400
    # The rest of the base is untouched by the component.
    assert (
        len(pod["volumes"])
        == len(_deployment(render_base())["spec"]["template"]["spec"]["volumes"]) + 1
    )
