"""Identities of queues, job definitions and jobs, whichever way a manifest names them.

A job queue is written as its name or its ARN
(``arn:aws:batch:REGION:ACCOUNT:job-queue/NAME``); a job definition as ``NAME``,
``NAME:REVISION`` or its ARN (``...:job-definition/NAME:REVISION``). AWS Batch
resolves both in the calling account and region only (the configured boto3
client's), so for one controller the name *is* the identity: an ARN is reduced to
its name without asking STS for the account, and an ARN of another account or
region could never have been submitted anyway (AWS refuses it).

Used for every comparison across manifests: duplicate jobs, dependencies, team
policy. The ledger key is *not* rewritten: :data:`controller.model.desired.JobKey`
stays ``(jobQueue as written, jobName)``, exactly what existing ledgers recorded,
so upgrading never resubmits a job; two manifests that name one job two ways are
refused as duplicates before either reaches the ledger.

Pure.
"""

from __future__ import annotations

import re

_ARN = re.compile(r"^arn:[^:]+:batch:[^:]*:[^:]*:(?P<type>[a-z-]+)/(?P<rest>.+)$")


def resource_name(reference: str, resource_type: str) -> str:
    """``NAME`` or ``arn:...:<resource_type>/NAME`` -> ``NAME`` (anything else unchanged)."""
    match = _ARN.match(reference)
    if match and match["type"] == resource_type:
        return match["rest"]
    return reference


def queue_name(reference: str) -> str:
    """A job queue's name, from its name or ARN."""
    return resource_name(reference, "job-queue")


def definition_name(reference: str) -> str:
    """A job definition's name, from ``NAME``, ``NAME:REV`` or its ARN."""
    return resource_name(reference, "job-definition").split(":", 1)[0]


def definition_revision(reference: str) -> int | None:
    """The revision a reference pins (``NAME:3``, ``...:job-definition/NAME:3``), or None."""
    _, _, revision = resource_name(reference, "job-definition").partition(":")
    return int(revision) if revision.isdigit() else None


JobIdentity = tuple[str, str]  # (queue name, jobName)


def job_identity(queue: str, name: str) -> JobIdentity:
    """One job, whether its queue is written as a name or an ARN."""
    return (queue_name(queue), name)
