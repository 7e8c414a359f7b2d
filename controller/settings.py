"""Settings for every command, from flags, ``BATCH_GITOPS_*`` env vars or defaults.

Owned here so that the CLI, the daemon and the tests build the same object and
inject it; nothing reads the environment anywhere else. AWS endpoint, region
and credentials are deliberately *not* settings: boto3's own configuration
(``AWS_ENDPOINT_URL_BATCH``, profiles, ``AWS_REGION``) owns them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")  # a DynamoDB table name
# Go's time.ParseDuration (what Flux and Argo CD users write): a sequence of
# decimal numbers with units, e.g. 1m30s, 1h30m, 2.5h, 500ms; plus d for days.
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_BARE_NUMBER = re.compile(r"^\d+(?:\.\d*)?$|^\.\d+$")


def parse_duration(value: object) -> float:
    """Turn ``30``, ``"30s"``, ``"1m30s"``, ``"1h30m"``, ``"500ms"`` into seconds.

    Go-style compounds (``time.ParseDuration``), plus ``d`` for days and a bare
    number for seconds; negative durations are refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 1m30s, 1h)")
    if isinstance(value, int | float):
        return float(value)
    text = "".join(str(value).split())  # "30 s" was accepted before; keep it
    if _BARE_NUMBER.match(text):
        return float(text)
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 1m30s, 1h)")
    return total


class Settings(BaseSettings):
    """Every knob of batch-gitops. Each field is also ``BATCH_GITOPS_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="BATCH_GITOPS_", extra="ignore")

    # --- source (git) ---
    repo: str = Field("", description="Git repository to watch: a local path or any git URL.")
    branch: str = Field("main", description="Branch whose head is applied.")
    path: str = Field("", description="Sub-directory of the repository holding manifests.")
    workdir: Path = Field(
        Path("$XDG_CACHE_HOME/batch-gitops"),
        description="Where remote repositories are cloned (a bare mirror per URL); "
        "$XDG_CACHE_HOME defaults to ~/.cache.",
    )
    fetch_timeout: float = Field(60.0, description="Seconds a git fetch may take before it fails.")

    # --- state ---
    state: Path | str = Field(
        Path("$XDG_STATE_HOME/batch-gitops/<controller-id>/ledger.sqlite"),
        description="Ledger of every registration, submission and action: a SQLite file "
        "(one process; $XDG_STATE_HOME defaults to ~/.local/state), or dynamodb://TABLE "
        "(shared by replicas).",
    )

    # --- behaviour ---
    controller_id: str = Field(
        "batch-gitops",
        description="Value of the batch-gitops/managed-by tag; controllers only touch their own.",
    )
    prune: bool = Field(True, description="Cancel/terminate/deregister what was removed from git.")
    prune_max_jobs: int = Field(
        10, description="Hold a pass's prunes when more than this many active jobs would go ..."
    )
    prune_max_ratio: float = Field(0.5, description="... and more than this share of them.")
    allow_mass_prune: bool = Field(
        False, description="Acknowledge held prunes: apply them even above the threshold."
    )

    # --- AWS ---
    rate_limit: float = Field(
        50.0,
        gt=0,
        description="Ceiling of each Batch API operation's calls per second (AWS allows 50 "
        "SubmitJob/s per account); the rate adapts below it when AWS throttles "
        "(rate_control). Lower it to leave headroom for other tools in the account.",
    )
    concurrency: int = Field(8, description="Parallel SubmitJob calls for independent jobs.")
    aws_max_attempts: int = Field(5, description="botocore retry attempts for safe calls.")
    aws_retry_mode: Literal["standard", "adaptive"] = Field(
        "adaptive", description="botocore retry mode for safe (idempotent) calls."
    )
    max_pass_seconds: float = Field(
        300.0,
        description="Stop starting AWS writes after this long in a pass; the rest continue "
        "next pass (0: no limit).",
    )
    progress_interval: float = Field(
        10.0,
        description="Seconds between progress log events (done, rate, time left) of long "
        "work: a pass's actions, a ledger rebuild.",
    )
    settle_grace: float = Field(
        10.0,
        description="An unsettled submit younger than this is not called lost yet (ListJobs "
        "may lag).",
    )
    job_retention: float = Field(
        7 * 86400.0,
        description="How long AWS Batch keeps a finished job visible (documented: at least "
        "7 days). A submission older than this that AWS does not list may have run and been "
        "forgotten, so it is never called lost.",
    )
    not_visible_warning: float = Field(
        300.0,
        description="A job AWS has not returned for longer than this is counted in "
        "batch_gitops_jobs_not_visible_too_long (AWS lists new jobs seconds late).",
    )

    # --- loop / server ---
    interval: float = Field(30.0, description="Seconds between passes of the daemon (30s, 2m).")
    listen: str = Field(
        "127.0.0.1:8080", description="host:port of /metrics, /healthz and /readyz."
    )
    ready_after: float = Field(
        300.0, description="/readyz fails when the last successful pass is older than this."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="Log rendering: auto is JSON for the daemon and text for one-shot "
        "commands; json or console force either.",
    )

    # --- policy and security (controller/policy.py, signatures.py, webhook.py) ---
    policy_file: str = Field(
        ".batch-gitops/policy.yaml",
        description="Team policy file, relative to the repository root; absent means no policy.",
    )
    policy_from: str = Field(
        "", description="Read the policy from this trusted ref instead of the applied revision."
    )
    max_manifest_bytes: int = Field(
        1024 * 1024, gt=0, description="Largest manifest file accepted, in bytes."
    )
    max_manifests: int = Field(
        20000, gt=0, description="A revision with more manifest files than this is not applied."
    )
    verify_signatures: bool = Field(
        False, description="Apply only revisions whose head commit is signed by an allowed key."
    )
    gnupghome: Path | None = Field(
        None, description="GnuPG home whose keyring holds the allowed GPG signing keys."
    )
    allowed_signers_file: Path | None = Field(
        None, description="SSH allowed-signers file (git's gpg.ssh.allowedSignersFile)."
    )
    allowed_signing_keys: list[str] = Field(
        default_factory=list,
        description="Optional fingerprints (GPG or SSH SHA256:...) the signer must be one of.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Shared secret of POST /webhook (GitHub HMAC key or GitLab token)."
    )
    webhook_secret_file: Path | None = Field(
        None, description="File holding the webhook secret (a mounted secret); wins over the env."
    )
    webhook_max_bytes: int = Field(
        1024 * 1024, gt=0, description="Largest webhook body accepted, in bytes."
    )

    # --- audit (controller.source.notes) ---
    git_notes: bool = Field(
        False,
        description="Append a git note per applied commit listing what it caused, and push "
        "it (needs push rights to the repository).",
    )
    git_notes_ref: str = Field(
        "batch-gitops", description="Notes ref the audit notes go to (refs/notes/<this>)."
    )

    # --- schedules and retention (controller.engine.schedules, controller.state.retention) ---
    schedule_grace: float = Field(
        300.0,
        description="A cron tick first seen later than this is 'missed' (catchUp decides).",
    )
    ledger_retention_days: float = Field(
        0.0,
        description="Daemon prunes finished ledger records older than this many days (0: never).",
    )

    # --- replicas (controller.aws.lease) ---
    lease_table: str = Field(
        "",
        description="DynamoDB table of the replicas' lease; empty: the shared ledger's own "
        "table (a ledger file needs no lease: its OS lock is the writer lock).",
    )
    lease_name: str = Field(
        "batch-gitops", description="Lease item name; replicas sharing it elect one leader."
    )
    lease_seconds: float = Field(
        15.0, gt=0, description="A silent leader is replaced after this long (renewed every 1/4)."
    )
    holder_id: str = Field(
        "", description="This replica's name in the lease (default: host-pid-random)."
    )

    # --- commit statuses and notifications (controller.service.notify) ---
    github_token: SecretStr | None = Field(
        None, description="GitHub token that may write commit statuses (repo:status scope)."
    )
    github_token_file: Path | None = Field(
        None, description="File holding the GitHub token (a mounted secret); wins over the env."
    )
    github_api_url: str = Field(
        "https://api.github.com",
        description="GitHub REST API root; GitHub Enterprise: https://HOST/api/v3.",
    )
    github_repository: str = Field(
        "", description="owner/name the statuses go to (default: derived from the repo URL)."
    )
    gitlab_token: SecretStr | None = Field(
        None, description="GitLab token with the api scope, for commit statuses."
    )
    gitlab_token_file: Path | None = Field(
        None, description="File holding the GitLab token (a mounted secret); wins over the env."
    )
    gitlab_api_url: str = Field(
        "https://gitlab.com/api/v4", description="GitLab REST API root (self-managed: .../api/v4)."
    )
    gitlab_project: str = Field(
        "", description="GitLab project id or path (default: derived from the repo URL)."
    )
    status_context: str = Field(
        "batch-gitops", description="Context (GitHub) / name (GitLab) of the commit status."
    )
    status_target_url: str = Field(
        "",
        description="Link of the commit status ({sha} is replaced by the commit); empty: none.",
    )
    notify_urls: SecretStr | None = Field(
        None,
        description="Comma-separated webhook URLs (Slack-compatible) that get notifications.",
    )
    notify_urls_file: Path | None = Field(
        None, description="File holding the notification URLs (a mounted secret); wins."
    )
    notify_rate_per_minute: float = Field(
        20.0, gt=0, description="Notifications per minute and URL; more are dropped and counted."
    )
    notify_source_unreachable_after: float = Field(
        600.0, description="Notify when the source has been unreadable this long (10m)."
    )

    # --- rate control and HTTP bounds (controller.aws.batch, controller.service.server) ---
    rate_control: Literal["aimd", "botocore", "fixed"] = Field(
        "aimd",
        description="How each operation's rate follows AWS throttling: aimd (lower on a 429, "
        "climb back with success), botocore (its adaptive limiter on SubmitJob), fixed.",
    )
    webhook_listen: str = Field(
        "",
        description="host:port of POST /webhook on its own server (only the webhook there); "
        "empty: /webhook is served on listen beside /metrics.",
    )
    http_idle_timeout: int = Field(
        10, ge=1, description="Seconds an HTTP connection may stay silent before it is closed."
    )
    http_max_connections: int = Field(
        1000,
        ge=4,
        description="Open HTTP connections per server; beyond it new ones wait in the listen "
        "backlog (capped at a quarter of the file-descriptor limit).",
    )

    @field_validator(
        "interval",
        "fetch_timeout",
        "ready_after",
        "schedule_grace",
        "max_pass_seconds",
        "progress_interval",
        "settle_grace",
        "job_retention",
        "not_visible_warning",
        "notify_source_unreachable_after",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)

    @field_validator("lease_seconds", mode="before")
    @classmethod
    def _lease_duration(cls, value: object) -> float:
        return parse_duration(value)

    @field_validator("state", mode="before")
    @classmethod
    def _state_location(cls, value: object) -> Path | str:
        """A ledger file (a Path), or a store URL kept as written: ``dynamodb://TABLE``
        (a Path would turn its ``//`` into ``/``)."""
        if isinstance(value, Path):
            return value
        text = str(value).strip()
        if "://" not in text:
            return Path(text)
        if not text.startswith("dynamodb://") or not _TABLE.match(text[len("dynamodb://") :]):
            raise ValueError(
                f"{text!r}: give a ledger file path or dynamodb://TABLE (a DynamoDB table "
                "name: 3-255 letters, digits, '_', '-' or '.')"
            )
        return text

    @model_validator(mode="before")
    @classmethod
    def _default_locations(cls, data: Any) -> Any:
        # The ledger and the git cache never depend on the working directory: a
        # per-user state/cache directory, the ledger keyed by controller id.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if not data.get("state"):
            data["state"] = default_state(str(data.get("controller_id") or "batch-gitops"))
        if not data.get("workdir"):
            data["workdir"] = _xdg("XDG_CACHE_HOME", ".cache") / "batch-gitops"
        return data

    # Verbosity of the logs (one-shot commands show warnings only unless -v or this).
    log_level: Literal["", "debug", "info", "warning", "error"] = Field(
        "",
        description="Log level; empty: warning for one-shot commands (-v: info), info for "
        "the daemon.",
    )


# Where the ledger was by default up to 0.1.0: relative to the working directory.
LEGACY_STATE = Path(".batch-gitops/ledger.sqlite")


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    # The XDG spec: a relative path is invalid and must be ignored.
    return Path(value) if value and Path(value).is_absolute() else Path.home() / fallback


def default_state(controller_id: str) -> Path:
    """``$XDG_STATE_HOME/batch-gitops/<controller id>/ledger.sqlite`` (~/.local/state)."""
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", controller_id) or "batch-gitops"
    return _xdg("XDG_STATE_HOME", ".local/state") / "batch-gitops" / safe_id / "ledger.sqlite"
