"""The ``batch-gitops`` command (click for parsing, rich for tables).

Every command builds one :class:`Settings` from flags over ``BATCH_GITOPS_*``
environment variables over defaults, and injects it. Commands that belong to
another module live there and are added at the bottom of this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from controller import __version__
from controller.cli.common import (
    OUTPUT,
    WAIT,
    build_settings,
    hold_writer,
    open_runtime,
    source_options,
)
from controller.cli.render import print_pass


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="batch-gitops")
def main() -> None:
    """GitOps for AWS Batch: make AWS Batch match a git repository of manifests."""


@main.command()
@click.argument(
    "directory", type=click.Path(exists=True, file_okay=False, path_type=Path), default="."
)
@OUTPUT
@click.option(
    "--policy-from",
    metavar="REF",
    default="",
    help="Check against the team policy at this trusted git ref (CI on a pull request), "
    "not the one in DIRECTORY.",
)
def validate(directory: Path, output: str, policy_from: str) -> None:
    """Check manifests in DIRECTORY offline. Exit 0 valid, 1 invalid."""
    from controller.model.desired import build_desired
    from controller.model.manifests import (
        SYMLINK_MESSAGE,
        ManifestError,
        linked_manifests,
        load_files,
        read_directory,
    )
    from controller.source.policy_ref import gate_directory

    loaded = load_files(read_directory(directory))
    for path in linked_manifests(directory):  # as in a pass: never followed, reported
        loaded.errors.append(ManifestError(path, "", SYMLINK_MESSAGE))
        loaded.invalid_paths.add(path)
    policy_file = build_settings().policy_file  # BATCH_GITOPS_POLICY_FILE
    desired = build_desired(gate_directory(loaded, directory, policy_file, policy_from))
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "valid": not desired.errors,
                    "jobs": len(desired.jobs),
                    "definitions": len(desired.definitions),
                    "errors": [e.as_dict() for e in desired.errors],
                },
                indent=2,
            )
        )
    else:
        for error in desired.errors:
            click.echo(str(error))
        summary = (
            f"{len(desired.jobs)} jobs, {len(desired.definitions)} job definitions, "
            f"{len(desired.errors)} problems"
        )
        click.echo(summary, err=True)
    sys.exit(1 if desired.errors else 0)


@main.command()
@source_options
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Output format; markdown is a pull-request comment.",
)
@click.option(
    "--link-base",
    default="",
    metavar="URL",
    help="Markdown: prefix turning manifest paths into links, e.g. "
    "https://github.com/org/repo/blob/<sha>/",
)
@click.option(
    "--policy-from",
    metavar="REF",
    help="Enforce the team policy of this trusted ref. [env: BATCH_GITOPS_POLICY_FROM]",
)
def plan(output: str, link_base: str, **flags: Any) -> None:
    """Show what a pass would do, without doing it.

    Exit 0 in sync, 2 changes pending, 1 error (like terraform plan -detailed-exitcode).
    """
    from controller.engine.reconcile import run_pass
    from controller.source.repository import SourceError, make_source

    settings = build_settings(**flags)
    api, ledger = open_runtime(settings)
    try:
        source = make_source(settings)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    result = run_pass(settings, source, api, ledger, dry_run=True)
    if output == "markdown":
        from controller.cli.markdown import render_plan

        click.echo(render_plan(result.as_dict(), link_base), nl=False)
    else:
        print_pass(result, output, Console(stderr=False))
    if result.result in ("source-error", "error") or result.errors:
        sys.exit(1)
    pending = result.plan is not None and (result.plan.actions or result.plan.held)
    sys.exit(2 if pending else 0)


@main.command()
@source_options
@OUTPUT
@WAIT
def reconcile(output: str, wait: str, **flags: Any) -> None:
    """Run one pass and apply it. Exit 0 on success, 1 if anything failed.

    Holds the ledger's writer lock for the whole pass: a second writer (the daemon, an
    overlapping cron run) waits for --wait, then exits 1 naming the holder.
    """
    from controller.engine.reconcile import run_pass
    from controller.source.repository import SourceError, make_source

    settings = build_settings(**flags)
    api, ledger = open_runtime(settings)
    try:
        source = make_source(settings)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    with hold_writer(ledger, "reconcile", wait, api) as fence:
        result = run_pass(settings, source, api, ledger, fence=fence)
    print_pass(result, output, Console())
    sys.exit(1 if result.failed else 0)


@main.command()
@source_options
@click.option("--interval", help="Time between passes, e.g. 30s, 2m. [env: BATCH_GITOPS_INTERVAL]")
@click.option(
    "--listen", help="host:port for /metrics, /healthz, /readyz. [env: BATCH_GITOPS_LISTEN]"
)
def run(**flags: Any) -> None:
    """Run the controller daemon until SIGTERM/SIGINT."""
    from controller.service.daemon import Daemon
    from controller.service.notify import NotifyConfigError
    from controller.source.repository import SourceError
    from controller.state.ledger import LedgerError

    settings = build_settings(**flags)
    api, ledger = open_runtime(settings)
    try:
        Daemon(settings, api, ledger).run_forever()
    except (SourceError, NotifyConfigError, LedgerError) as exc:  # LedgerError: e.g. replicas
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--once", is_flag=True, help="Converge once and exit 0 (for scripts and CI).")
@click.option(
    "--manifests",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Manifest folder to seed the demo repository (default: ./manifests).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Where the demo keeps its repository and ledger (default: a temp dir).",
)
def demo(once: bool, manifests: Path | None, workdir: Path | None) -> None:
    """The whole loop on an embedded moto Batch endpoint, in a live table."""
    from controller.demo.app import run_demo

    sys.exit(run_demo(once=once, manifests=manifests, workdir=workdir))


# --- commands owned by other modules (one line each) ---
from controller.cli.ship import config_reference_command, init, schema  # noqa: E402

main.add_command(schema)
main.add_command(init)
main.add_command(config_reference_command)
from controller.cli.history import history  # noqa: E402

main.add_command(history)
from controller.cli.status import status  # noqa: E402

main.add_command(status)
from controller.cli.retention import ledger_group  # noqa: E402

main.add_command(ledger_group)
from controller.cli.ledger import ledger  # noqa: E402  (same group cli_retention extends)

main.add_command(ledger)
