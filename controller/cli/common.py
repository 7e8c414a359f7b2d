"""Shared pieces of the ``batch-gitops`` commands: options, settings, runtime.

Every command module imports from here (never from ``controller.cli.main``), and
``controller.cli.main`` imports every command module, so there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from controller.logs import configure
from controller.settings import Settings, parse_duration

OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
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
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:  # pydantic ValidationError: show it as a usage error
        raise click.UsageError(str(exc)) from exc


def open_runtime(settings: Settings) -> tuple[Any, Any]:
    """The Batch adapter and the ledger for a command (logging configured)."""
    from controller.aws.batch import BatchError, Boto3Batch
    from controller.state.ledger import LedgerError
    from controller.state.stores import open_ledger

    configure(settings.log_format)
    try:
        ledger = open_ledger(settings.state, settings)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        api = Boto3Batch(
            rate_limit=settings.rate_limit,
            max_attempts=settings.aws_max_attempts,
            retry_mode=settings.aws_retry_mode,
            pool_size=max(10, settings.concurrency),
        )
    except BatchError as exc:
        raise click.ClickException(str(exc)) from exc
    return api, ledger
