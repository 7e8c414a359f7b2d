"""``batch-gitops ledger prune``: bounded ledger history (rules in controller.state.retention).

Attached to the ``ledger`` command group of ``controller.cli.ledger`` when that
module exists, so every ledger maintenance command lives under one group;
otherwise this module provides the group itself.
"""

from __future__ import annotations

import json
import re

import click

from controller.cli.common import (
    OUTPUT,
    VERBOSE,
    WAIT,
    build_settings,
    configure_logs,
    hold_writer,
    open_ledger_for,
)
from controller.settings import parse_duration
from controller.state.retention import DAY, prune_ledger

_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d\s*$")


def parse_age(value: str) -> float:
    """``90d``, ``12h``, ``30m``, ``45s`` (or plain seconds) -> seconds."""
    match = _DAYS.match(value)
    if match:
        return float(match.group(1)) * DAY
    return parse_duration(value)


def _ledger_group() -> click.Group:
    try:
        from controller.cli.ledger import (  # type: ignore[import-not-found,unused-ignore]
            ledger,
        )
    except ImportError:
        return click.Group("ledger", help="Maintain the ledger file (SQLite).")
    group: click.Group = ledger
    return group


ledger_group = _ledger_group()


@ledger_group.command("prune")
@click.option(
    "--older-than",
    required=True,
    metavar="AGE",
    help="Delete finished records last updated before this age, e.g. 90d, 36h.",
)
@click.option(
    "--state", metavar="LEDGER", help="Ledger file or dynamodb://TABLE. [env: BATCH_GITOPS_STATE]"
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@OUTPUT
@VERBOSE
@WAIT
def prune(older_than: str, state: str | None, dry_run: bool, output: str, wait: str) -> None:
    """Delete old finished records; never an active job or the current run of a job in git."""
    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from exc
    settings = build_settings(state=state)
    configure_logs(settings)
    ledger = open_ledger_for(settings, "read")  # an existing ledger; no AWS call
    try:
        with hold_writer(ledger, "ledger prune", wait):
            result = prune_ledger(ledger, older_than=age, dry_run=dry_run)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from exc
    if output == "json":
        click.echo(json.dumps({"ledger": str(settings.state), **result.as_dict()}, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result.jobs} job records, {result.ticks} schedule ticks, "
        f"{result.definitions} deregistered definitions, {result.actions} audit actions, "
        f"{result.passes} passes older than {older_than} in {settings.state}"
    )
