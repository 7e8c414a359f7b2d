"""Who gets told what: the forge targets and webhook URLs, resolved once from settings.

Tokens and URLs come from a mounted file (``*_FILE``, which wins) or the
environment and stay :class:`~pydantic.SecretStr` until the request is built.
The repository (GitHub ``owner/name``) and project (GitLab path) default to the
path of the controller's own remote URL. Anything that cannot work is a
:class:`NotifyConfigError` naming the setting, raised when the daemon starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from controller.settings import Settings

# git@host:owner/name.git (scp-like ssh syntax)
_SCP = re.compile(r"^[^/\s@]+@(?P<host>[^:\s]+):(?P<path>.+)$")


class NotifyConfigError(ValueError):
    """A status or notification setting cannot work; the message names it."""


@dataclass(frozen=True)
class ForgeTarget:
    """Where commit statuses go: GitHub (``repository`` = owner/name) or GitLab (project)."""

    kind: str  # github | gitlab
    api_url: str
    repository: str
    token: SecretStr


@dataclass(frozen=True)
class NotifyConfig:
    forges: list[ForgeTarget] = field(default_factory=list)
    webhook_urls: list[SecretStr] = field(default_factory=list)
    context: str = "batch-gitops"
    target_url: str = ""
    rate_per_minute: float = 20.0
    source_unreachable_after: float = 600.0
    controller_id: str = "batch-gitops"

    @property
    def enabled(self) -> bool:
        return bool(self.forges or self.webhook_urls)

    def secrets(self) -> list[str]:
        """Every secret value: scrubbed from anything a response could echo into a log."""
        values = [forge.token.get_secret_value() for forge in self.forges]
        for url in self.webhook_urls:
            # A server may echo only the path (Slack's secret is in it), or the query.
            parts = urlsplit(url.get_secret_value())
            values += [url.get_secret_value(), parts.path if len(parts.path) > 1 else ""]
            values.append(parts.query)
        return sorted({v for v in values if v}, key=len, reverse=True)


def _secret(value: SecretStr | None, file: Path | None, setting: str) -> str:
    """A secret from its file (wins; one trailing newline stripped) or the env; '' if none."""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise NotifyConfigError(
                f"BATCH_GITOPS_{setting}_FILE: cannot read {file}: {exc.strerror}"
            ) from exc
        if not text:
            raise NotifyConfigError(f"BATCH_GITOPS_{setting}_FILE: {file} is empty")
        return text
    return value.get_secret_value().strip() if value is not None else ""


def remote_path(repo: str) -> str:
    """``owner/name`` (or ``group/sub/name``) of a git remote URL; '' for a local path."""
    match = _SCP.match(repo)
    if match and "://" not in repo:
        path = match.group("path")
    else:
        parts = urlsplit(repo)
        if not parts.scheme or parts.scheme == "file" or not parts.netloc:
            return ""
        path = parts.path
    path = path.strip("/")
    return path[: -len(".git")] if path.endswith(".git") else path


def _github_repository(settings: Settings) -> str:
    repository = settings.github_repository.strip() or remote_path(settings.repo)
    if not repository:
        raise NotifyConfigError(
            "BATCH_GITOPS_GITHUB_REPOSITORY: not set and BATCH_GITOPS_REPO is not a remote "
            "URL it could be derived from; set it to owner/name"
        )
    if repository.count("/") != 1 or not all(repository.split("/")):
        raise NotifyConfigError(f"BATCH_GITOPS_GITHUB_REPOSITORY: {repository!r} is not owner/name")
    return repository


def _gitlab_project(settings: Settings) -> str:
    project = settings.gitlab_project.strip() or remote_path(settings.repo)
    if not project:
        raise NotifyConfigError(
            "BATCH_GITOPS_GITLAB_PROJECT: not set and BATCH_GITOPS_REPO is not a remote URL "
            "it could be derived from; set it to the project id or its path (group/name)"
        )
    return project


def _api_url(value: str, setting: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NotifyConfigError(f"BATCH_GITOPS_{setting}: {value!r} is not an http(s) URL")
    return value.strip().rstrip("/")


def _webhook_urls(settings: Settings) -> list[SecretStr]:
    raw = _secret(settings.notify_urls, settings.notify_urls_file, "NOTIFY_URLS")
    urls = [u.strip() for u in re.split(r"[,\n]", raw) if u.strip()]
    for index, url in enumerate(urls, 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # The URL itself may be a secret (Slack's are): name its position, not its text.
            raise NotifyConfigError(
                f"BATCH_GITOPS_NOTIFY_URLS: URL {index} of {len(urls)} is not an http(s) URL"
            )
    return [SecretStr(url) for url in urls]


def load_config(settings: Settings) -> NotifyConfig:
    """The resolved targets; :class:`NotifyConfigError` if a configured one cannot work."""
    forges: list[ForgeTarget] = []
    github = _secret(settings.github_token, settings.github_token_file, "GITHUB_TOKEN")
    if github:
        forges.append(
            ForgeTarget(
                "github",
                _api_url(settings.github_api_url, "GITHUB_API_URL"),
                _github_repository(settings),
                SecretStr(github),
            )
        )
    gitlab = _secret(settings.gitlab_token, settings.gitlab_token_file, "GITLAB_TOKEN")
    if gitlab:
        forges.append(
            ForgeTarget(
                "gitlab",
                _api_url(settings.gitlab_api_url, "GITLAB_API_URL"),
                _gitlab_project(settings),
                SecretStr(gitlab),
            )
        )
    context = settings.status_context.strip()
    if not context:
        raise NotifyConfigError("BATCH_GITOPS_STATUS_CONTEXT: must not be empty")
    return NotifyConfig(
        forges=forges,
        webhook_urls=_webhook_urls(settings),
        context=context,
        target_url=settings.status_target_url.strip(),
        rate_per_minute=settings.notify_rate_per_minute,
        source_unreachable_after=settings.notify_source_unreachable_after,
        controller_id=settings.controller_id,
    )
