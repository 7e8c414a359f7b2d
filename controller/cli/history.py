"""``batch-gitops history``: the audit trail from the ledger, for people and for scripts.

    batch-gitops history --commit 3f2a9c1        # which jobs did this commit cause?
    batch-gitops history --manifest jobs/x.json  # what happened to this manifest over time?
    batch-gitops history --job 6b1c...           # which commit and author produced this job?

Reads the ledger only (no AWS call), so it works offline and on a copy of the file.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from controller.cli.common import OUTPUT, VERBOSE, build_settings, configure_logs, open_ledger_for
from controller.state.history import History, HistoryQueryError, query_history


@click.command()
@click.option("--commit", metavar="SHA", help="A commit SHA or prefix: what it caused.")
@click.option("--manifest", metavar="PATH", help="Repository-relative manifest path.")
@click.option("--job", "job", metavar="JOB_ID", help="An AWS Batch job ID: where it came from.")
@click.option(
    "--limit", type=click.IntRange(1), default=200, show_default=True, help="Newest N of each."
)
@click.option(
    "--state",
    metavar="LEDGER",
    help="Ledger file or dynamodb://TABLE. [env: BATCH_GITOPS_STATE]",
)
@OUTPUT
@VERBOSE
def history(
    commit: str | None,
    manifest: str | None,
    job: str | None,
    limit: int,
    state: str | None,
    output: str,
) -> None:
    """The audit trail: jobs and actions by commit, manifest or job ID (filters combine).

    Exit 0 when something was found, 1 when the ledger has nothing for the filters.
    """
    settings = build_settings(state=state)
    configure_logs(settings)
    ledger = open_ledger_for(settings, "read")
    try:
        found = query_history(ledger, commit=commit, manifest=manifest, job=job, limit=limit)
    except HistoryQueryError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        ledger.close()
    if output == "json":
        click.echo(json.dumps(found.as_dict(), indent=2))
    else:
        _print(found, Console())
    if found.empty:
        click.echo(
            f"nothing in {settings.state} for {found.describe_filters()}",
            err=True,
        )
    sys.exit(1 if found.empty else 0)


def _print(found: History, console: Console) -> None:
    """One line per run and per action: long IDs and SHAs are never cut to fit a table."""
    data = found.as_dict()
    if data["runs"]:
        console.print(f"[bold]Job runs[/] ({found.describe_filters()})", highlight=False)
    for run in data["runs"]:
        status = run["status"] or run["state"]
        if run["removed"]:
            status += " (manifest removed)"
        elif not run["current"]:
            status += " (superseded)"
        console.print(
            f"  {run['submitted_at']}  {run['queue']}/{run['name']}  {run['job_id'] or '-'}  "
            f"{status}\n    manifest {run['manifest']}  commit {run['commit'][:12]}  "
            f"by {run['author']}  committed {run['committed_at']}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    if data["actions"]:
        console.print(f"[bold]Actions[/] ({found.describe_filters()})", highlight=False)
    for action in data["actions"]:
        target = f"{action['queue']}/{action['name']}" if action["queue"] else action["name"]
        result = action["result"] + (f" ({action['message']})" if action["message"] else "")
        console.print(
            f"  {action['at']}  {action['action']:<10} {target}  {action['manifest']}  "
            f"-> {result}  {action['aws_id'] or ''}\n    commit {action['commit'][:12]}  "
            f"by {action['author']}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
