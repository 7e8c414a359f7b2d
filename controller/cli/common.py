"""Shared pieces of the ``batch-gitops`` commands: options, settings, runtime.

Every command module imports from here (never from ``controller.cli.main``), and
``controller.cli.main`` imports every command module, so there is no import cycle.

Conventions every command keeps (issue 15): human output on stdout, logs on stderr
(warnings only for one-shot commands unless ``-v``); a configuration mistake is one
line naming the setting, exit 1; a command that only reads the ledger never
creates one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import click
from pydantic import ValidationError

from controller.logs import LEVELS, configure
from controller.settings import LEGACY_STATE, Settings, default_state, parse_duration

OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)

_VERBOSE_KEY = "batch_gitops.verbose"


def _count_verbose(ctx: click.Context, _: click.Parameter, value: int) -> int:
    # Shared by the group and every command: `batch-gitops -v plan` and `plan -v` add up.
    ctx.meta[_VERBOSE_KEY] = ctx.meta.get(_VERBOSE_KEY, 0) + (value or 0)
    return value


VERBOSE = click.option(
    "-v",
    "--verbose",
    count=True,
    expose_value=False,
    is_eager=True,
    callback=_count_verbose,
    help="More log lines on stderr: -v info, -vv debug (default: warnings and errors).",
)


WAIT = click.option(
    "--wait",
    "wait",
    metavar="DURATION",
    default="0s",
    show_default=True,
    help="If another process is writing this ledger, wait this long for it (e.g. 30s, 5m) "
    "before giving up with exit 1.",
)


def parse_wait(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--wait") from exc


@contextmanager
def hold_writer(ledger: Any, purpose: str, wait: str, api: Any = None) -> Iterator[Any]:
    """The ledger's writer lock for a command's whole pass; busy -> one line, exit 1.

    ``api``: the Batch adapter the command writes with; on the shared ledger its writes
    are refused once the lease is lost (as in the daemon).
    """
    from controller.state.ledger import LedgerError, WriterBusy
    from controller.state.writer import writing

    try:
        with writing(ledger, purpose, parse_wait(wait), api=api) as fence:
            yield fence
    except (WriterBusy, LedgerError) as exc:
        raise click.ClickException(str(exc)) from exc


def source_options(fn: Any) -> Any:
    options = [
        click.option(
            "--repo",
            "repo",
            metavar="SRC",
            help="Git repository: local path or URL. [env: BATCH_GITOPS_REPO]",
        ),
        click.option("--branch", help="Branch (or revision) to apply. [env: BATCH_GITOPS_BRANCH]"),
        click.option(
            "--path",
            "path",
            metavar="SUBDIR",
            help="Manifest sub-directory. [env: BATCH_GITOPS_PATH]",
        ),
        click.option(
            "--state",
            metavar="LEDGER",
            help="Ledger: a file, or dynamodb://TABLE (shared by replicas). "
            "[env: BATCH_GITOPS_STATE]",
        ),
        click.option(
            "--prune/--no-prune",
            default=None,
            help="--no-prune only reports removals. [env: BATCH_GITOPS_PRUNE]",
        ),
        click.option(
            "--allow-mass-prune",
            is_flag=True,
            default=None,
            help="Acknowledge prunes held by the mass-prune guard.",
        ),
        click.option(
            "--controller-id", help="managed-by tag value. [env: BATCH_GITOPS_CONTROLLER_ID]"
        ),
        click.option(
            "--log-format",
            type=click.Choice(["auto", "json", "console"]),
            help="Log rendering. [env: BATCH_GITOPS_LOG_FORMAT]",
        ),
        VERBOSE,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _setting_name(field: str, flags: set[str]) -> str:
    """How the user spelled a setting: its flag if one was given, else its variable."""
    if field in flags:
        return "--" + field.replace("_", "-")
    return f"BATCH_GITOPS_{field.upper()}"


def settings_error(exc: ValidationError, flags: set[str]) -> str:
    """One line per mistake, naming the flag or variable: ``BATCH_GITOPS_INTERVAL: ...``."""
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error.get("loc") else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        shown = repr(error.get("input"))
        if field and "secret" not in field and shown not in message and len(shown) < 80:
            message += f" (got {shown})"
        problems.append(f"{_setting_name(field, flags)}: {message}" if field else message)
    return "; ".join(problems)


def build_settings(*, uses_ledger: bool = True, **overrides: Any) -> Settings:
    """Settings from flags (``overrides``) over the environment; a mistake exits 1 on one line.

    An existing ledger at the old (0.1.0) default (``.batch-gitops/ledger.sqlite`` in the
    working directory) is used, with a warning, when the new default does not exist yet
    (``uses_ledger``: the command opens the ledger at all).
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise click.ClickException(settings_error(exc, set(given))) from None
    if (
        uses_ledger
        and settings.state == default_state(settings.controller_id)
        and not settings.state.exists()
        and LEGACY_STATE.is_file()
    ):
        legacy = LEGACY_STATE.resolve()
        click.echo(
            f"warning: using the ledger at the old default location {legacy}; move it to "
            f"{settings.state} or set BATCH_GITOPS_STATE (CHANGELOG.md: the default ledger "
            "location moved)",
            err=True,
        )
        settings = settings.model_copy(update={"state": legacy})
    return settings


def verbosity() -> int:
    ctx = click.get_current_context(silent=True)
    return int(ctx.meta.get(_VERBOSE_KEY, 0)) if ctx is not None else 0


def configure_logs(settings: Settings | None = None, *, daemon: bool = False) -> None:
    """Logs on stderr: the daemon at info in JSON, one-shot commands at warning (-v: more)
    in the console format (``--log-format json`` for machines)."""
    if settings is not None and settings.log_level:
        level = LEVELS[settings.log_level]
    else:
        base = logging.INFO if daemon else logging.WARNING
        level = max(logging.DEBUG, base - 10 * verbosity())
    configure(
        settings.log_format if settings is not None else "auto",
        level=level,
        json_when_auto=daemon,
    )


LedgerUse = Literal["write", "read", "plan"]


def open_ledger_for(settings: Settings, use: LedgerUse) -> Any:
    """The ledger a command needs. ``read``: it must exist (never created); ``plan``: a
    missing one plans as a first pass, in memory; ``write``: created if missing."""
    from controller.state.ledger import LedgerError
    from controller.state.stores import open_ledger

    location: Path | str = settings.state
    missing = isinstance(settings.state, Path) and not settings.state.exists()
    if use != "write" and missing:
        if use == "read":
            raise click.ClickException(
                f"no ledger at {settings.state}: pass --state (or BATCH_GITOPS_STATE) with "
                "the ledger file `batch-gitops reconcile` or `run` writes; nothing was created"
            )
        click.echo(
            f"note: no ledger at {settings.state} yet: planned as a first pass (nothing "
            "applied so far); --state names another ledger file",
            err=True,
        )
        location = ":memory:"
    try:
        return open_ledger(location, settings)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc


def open_batch(settings: Settings) -> Any:
    """The AWS Batch adapter; a configuration mistake (region, profile, endpoint) exits 1."""
    from controller.aws.batch import BatchError, Boto3Batch

    try:
        return Boto3Batch.from_settings(settings)
    except BatchError as exc:
        raise click.ClickException(str(exc)) from exc


def open_runtime(
    settings: Settings, *, ledger: LedgerUse = "write", daemon: bool = False
) -> tuple[Any, Any]:
    """The Batch adapter and the ledger for a command (logging configured)."""
    configure_logs(settings, daemon=daemon)
    api = open_batch(settings)  # first: a configuration mistake must not leave a file behind
    return api, open_ledger_for(settings, ledger)
