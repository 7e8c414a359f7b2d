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

from controller import __version__
from controller.cli.common import (
    OUTPUT,
    VERBOSE,
    WAIT,
    build_settings,
    configure_logs,
    hold_writer,
    open_runtime,
    source_options,
)
from controller.cli.render import human_console, plural, print_pass


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="batch-gitops")
@VERBOSE
def main() -> None:
    """GitOps for AWS Batch: make AWS Batch match a git repository of manifests.

    Human output goes to stdout, logs to stderr (warnings only, unless -v).
    """
    configure_logs()  # until a command knows its settings: nothing below warning on stderr


class ExitOneOnUsageError(click.Command):
    """``plan`` keeps exit 2 for "changes pending": a usage mistake there exits 1."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            exc.exit_code = 1  # type: ignore[misc]  # this instance only: a usage mistake
            raise


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
    policy_file = build_settings(uses_ledger=False).policy_file  # BATCH_GITOPS_POLICY_FILE
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
            f"{plural(len(desired.jobs), 'job')}, "
            f"{plural(len(desired.definitions), 'job definition')}, "
            f"{plural(len(desired.errors), 'problem')}"
        )
        click.echo(summary, err=True)
    sys.exit(1 if desired.errors else 0)


@main.command(cls=ExitOneOnUsageError)
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

    Exit 0 in sync, 2 changes pending, 1 error or usage mistake (like terraform plan
    -detailed-exitcode). Reads the ledger, never creates it: without one it plans a
    first pass.
    """
    data = _one_pass(flags, dry_run=True)
    if output == "markdown":
        from controller.cli.markdown import render_plan

        click.echo(render_plan(data, link_base), nl=False)
    else:
        print_pass(data, output, human_console(), applied=False)
    if data["result"] not in ("ok", "degraded") or data["errors"]:
        sys.exit(1)
    sys.exit(2 if data["actions"] or data["held"] else 0)


@main.command()
@source_options
@OUTPUT
@WAIT
def reconcile(output: str, wait: str, **flags: Any) -> None:
    """Run one pass and apply it. Exit 0 on success, 1 if anything failed.

    Holds the ledger's writer lock for the whole pass: a second writer (the daemon, an
    overlapping cron run) waits for --wait, then exits 1 naming the holder.
    """
    data = _one_pass(flags, dry_run=False, wait=wait)
    print_pass(data, output, human_console(), applied=True)
    sys.exit(0 if data["result"] == "ok" else 1)


def _one_pass(flags: dict[str, Any], *, dry_run: bool, wait: str = "0s") -> dict[str, Any]:
    """One pass of plan/reconcile: its summary, with whether AWS was read and the ledger."""
    from controller.cli.aws_reads import WatchedBatch, confirm_reachable, pass_summary
    from controller.engine.reconcile import run_pass
    from controller.source.repository import SourceError, make_source

    settings = build_settings(**flags)
    api, ledger = open_runtime(settings, ledger="plan" if dry_run else "write")
    try:
        source = make_source(settings)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    watched = WatchedBatch(api)
    if dry_run:  # a plan never needs the writer lock
        result = run_pass(settings, source, watched.as_api(), ledger, dry_run=True)
    else:
        # `api`: on the shared ledger its writes are refused once the lease is lost.
        with hold_writer(ledger, "reconcile", wait, api) as fence:
            result = run_pass(settings, source, watched.as_api(), ledger, fence=fence)
    if result.result in ("ok", "degraded"):
        confirm_reachable(watched, result.desired)
    return pass_summary(result, watched, str(settings.state))


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
    _check_secret_file(settings.webhook_secret_file)
    api, ledger = open_runtime(settings, daemon=True)
    try:
        Daemon(settings, api, ledger).run_forever()
    except (SourceError, NotifyConfigError, LedgerError) as exc:  # LedgerError: e.g. replicas
        raise click.ClickException(str(exc)) from exc


def _check_secret_file(path: Path | None) -> None:
    if path is not None and not path.is_file():
        raise click.ClickException(
            f"BATCH_GITOPS_WEBHOOK_SECRET_FILE: {path} is not a readable file (unset the "
            "variable to run without the webhook)"
        )


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
    help="Where the demo keeps its repository and ledger, kept afterwards (default: a temp "
    "dir, removed on exit).",
)
@VERBOSE
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
