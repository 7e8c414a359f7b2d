"""Shared pieces of the ``batch-gitops`` commands: options, settings, runtime.

Every command module imports from here (never from ``controller.cli.main``), and
``controller.cli.main`` imports every command module, so there is no import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from controller.logs import configure
from controller.settings import Settings

OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)


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
            type=click.Path(path_type=Path),
            help="Ledger file. [env: BATCH_GITOPS_STATE]",
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
        ledger = open_ledger(settings.state)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        api = Boto3Batch.from_settings(settings)
    except BatchError as exc:
        raise click.ClickException(str(exc)) from exc
    return api, ledger
