"""Commit statuses as GitHub's and GitLab's REST APIs document them (requests only; no I/O).

GitHub (and GitHub Enterprise, ``https://HOST/api/v3``):
``POST /repos/{owner}/{repo}/statuses/{sha}`` with ``state`` (pending, success,
failure, error), ``target_url``, ``description`` (at most 140 characters) and
``context``; ``Authorization: Bearer``, ``Accept: application/vnd.github+json``,
``X-GitHub-Api-Version``. There is no "running": pending covers queued and running.

GitLab: ``POST /projects/:id/statuses/:sha`` (``:id`` the numeric id or the
URL-encoded path) with ``state`` (pending, running, success, failed, canceled),
``name``, ``target_url``, ``description``; ``PRIVATE-TOKEN``. GitLab has no
"error": invalid manifests are ``failed``. GitLab answers 400 "Cannot transition
status" when a status is posted again in the state it already has (only the
description changed): the state it asked for is there, so that counts as sent.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from controller.service.notify.commits import CommitReport
from controller.service.notify.config import ForgeTarget
from controller.service.notify.delivery import Request, default_verdict

GITHUB_API_VERSION = "2022-11-28"
DESCRIPTION_MAX = 140
GITHUB_STATES = {
    "queued": "pending",
    "running": "pending",
    "success": "success",
    "failure": "failure",
    "error": "error",
}
GITLAB_STATES = {
    "queued": "pending",
    "running": "running",
    "success": "success",
    "failure": "failed",
    "error": "failed",
}


def forge_state(kind: str, report: CommitReport) -> str:
    return (GITHUB_STATES if kind == "github" else GITLAB_STATES)[report.state]


def status_request(
    target: ForgeTarget, sha: str, report: CommitReport, *, context: str, target_url: str
) -> Request:
    """The request that sets ``sha``'s status on ``target`` to what ``report`` says."""
    description = report.description[:DESCRIPTION_MAX]
    link = target_url.replace("{sha}", sha) if target_url else ""
    token = target.token.get_secret_value()
    if target.kind == "github":
        body: dict[str, str | None] = {
            "state": forge_state("github", report),
            "description": description,
            "context": context,
            "target_url": link or None,
        }
        return Request(
            "POST",
            f"{target.api_url}/repos/{target.repository}/statuses/{sha}",
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": GITHUB_API_VERSION,
            },
            {k: v for k, v in body.items() if v is not None},
        )
    body = {
        "state": forge_state("gitlab", report),
        "name": context,
        "description": description,
        "target_url": link or None,
    }
    project = quote(target.repository, safe="")  # group/name -> group%2Fname
    return Request(
        "POST",
        f"{target.api_url}/projects/{project}/statuses/{sha}",
        {"PRIVATE-TOKEN": token},
        {k: v for k, v in body.items() if v is not None},
    )


def gitlab_verdict(status: int, data: bytes) -> str:
    """GitLab's 400 for a state the status already has is a success (see module doc)."""
    if status == 400:
        try:
            message = str(json.loads(data or b"{}").get("message", ""))
        except (ValueError, AttributeError):
            message = ""
        if "Cannot transition status" in message:
            return "sent"
    return default_verdict(status, data)
