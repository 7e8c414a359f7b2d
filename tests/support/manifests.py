"""The request files tests commit, built the way teams write them.

A definition is a busybox container (1 vCPU, 128 MiB) unless the test says otherwise;
a job runs on ``test-queue`` (one of the queues the ``moto`` fixture creates) against
the definition named ``trainer`` unless the test says otherwise."""

from __future__ import annotations

from typing import Any

QUEUE = "test-queue"
API_VERSION = "batch-gitops/v1"


def definition(name: str = "trainer", **extra: Any) -> dict[str, Any]:
    """A RegisterJobDefinition request: a busybox container, plus ``extra`` members."""
    return {
        "jobDefinitionName": name,
        "type": "container",
        "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
        **extra,
    }


def job(
    name: str,
    queue: str = QUEUE,
    definition: str = "trainer",
    *,
    after: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A SubmitJob request; ``after`` names the upstream job it depends on (by name, as a
    manifest does), ``extra`` adds members."""
    request: dict[str, Any] = {"jobName": name, "jobQueue": queue, "jobDefinition": definition}
    if after is not None:
        request["dependsOn"] = [{"jobId": after}]
    return {**request, **extra}


def envelope(spec: dict[str, Any], kind: str = "Job", **options: Any) -> dict[str, Any]:
    """The batch-gitops envelope around a request, with ``options`` (``onChange``,
    ``rerun``, ``prune``, ``schedule`` ...); no options key when there are none."""
    document: dict[str, Any] = {"apiVersion": API_VERSION, "kind": kind, "spec": spec}
    if options:
        document["options"] = options
    return document


def echo_job(name: str, command: str = "1") -> dict[str, Any]:
    """A trainer job that echoes ``command`` (a new command is a new spec: a new run)."""
    return job(name, containerOverrides={"command": ["echo", command]})
