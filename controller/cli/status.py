"""``batch-gitops status``: managed jobs and definitions, live; ``--watch`` until they end.

The picture (array progress, dependency chains, blocked jobs) is built by
controller.status_view; this module owns the command, its rich rendering and
the watch loop. ``--watch`` replaces the ``describe-jobs`` polling loops teams
write: it refreshes a live table (or prints JSON lines) until every shown job
has ended, and its exit code says how they ended:

* 0 — every shown job SUCCEEDED (or nothing is shown);
* 1 — they all ended, and at least one FAILED, is blocked by a failed upstream,
  or was never submitted (rejected);
* 124 — ``--timeout`` passed first (like ``timeout(1)``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from controller.cli.common import OUTPUT, build_settings, open_runtime
from controller.cli.status_view import DependencyCache, JobView, Snapshot, collect, dumps_line
from controller.settings import parse_duration

EXIT_TIMEOUT = 124
_COLORS = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "BLOCKED": "red",
    "RUNNING": "cyan",
    "STARTING": "cyan",
    "FORGOTTEN": "dim",
    "NOT VISIBLE YET": "yellow",
}


def progress_text(view: JobView) -> str:
    """``7/10 ok, 1 failed, 2 running`` for an array parent; '' otherwise."""
    p = view.progress
    if not p:
        return ""
    parts = [f"{p['SUCCEEDED']}/{p['size']} ok"]
    if p["FAILED"]:
        parts.append(f"{p['FAILED']} failed")
    if p["RUNNING"]:
        parts.append(f"{p['RUNNING']} running")
    if p["PENDING"]:
        parts.append(f"{p['PENDING']} pending")
    return ", ".join(parts)


def status_table(snapshot: Snapshot, title: str = "Jobs") -> Table:
    table = Table("queue", "job", "status", "array", "after", "job id", "manifest", "commit")
    table.title = title
    for view in snapshot.views:
        r = view.record
        status = view.display
        if view.blocked:
            status += f" (upstream {', '.join(view.blocked_by)} failed)"
        indent = "  " * view.depth + ("└ " if view.depth else "")
        table.add_row(
            r.queue,
            Text(indent + r.name),
            Text(status, style=_COLORS.get(view.display, "yellow")),
            progress_text(view),
            ", ".join(view.upstream),
            r.job_id or "-",
            r.manifest,
            r.revision[:12],
        )
    return table


def _definitions(ledger: Any) -> list[Any]:
    return [d for revisions in ledger.active_definitions().values() for d in revisions]


def _exit_code(snapshot: Snapshot) -> int:
    return 0 if snapshot.ok else 1


@click.command()
@click.option("--state", metavar="LEDGER", help="Ledger file or dynamodb://TABLE.")
@click.option("--offline", is_flag=True, help="Show the ledger's last known statuses only.")
@click.option("--all", "show_all", is_flag=True, help="Include removed manifests' jobs.")
@click.option(
    "--job", "names", multiple=True, metavar="PATTERN", help="Only jobs named like this (glob)."
)
@click.option("--queue", "queues", multiple=True, help="Only jobs of this queue.")
@click.option("--watch", is_flag=True, help="Refresh until every shown job has ended.")
@click.option(
    "--interval", default="2s", show_default=True, help="Time between refreshes with --watch."
)
@click.option("--timeout", default=None, help="Give up watching after this long (exit 124).")
@OUTPUT
def status(
    state: str | None,
    offline: bool,
    show_all: bool,
    names: tuple[str, ...],
    queues: tuple[str, ...],
    watch: bool,
    interval: str,
    timeout: str | None,
    output: str,
) -> None:
    """Managed jobs and definitions: AWS state, array progress, dependency chains.

    A job whose upstream FAILED is shown as BLOCKED. With --watch: exit 0 when every
    shown job SUCCEEDED, 1 when they ended otherwise, 124 on --timeout.
    """
    try:
        every = parse_duration(interval)
        limit = parse_duration(timeout) if timeout else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    settings = build_settings(state=state)
    api, ledger = open_runtime(settings)
    cache = DependencyCache()

    def take() -> Snapshot:
        return collect(
            ledger, None if offline else api, cache, show_all=show_all, names=names, queues=queues
        )

    snapshot = take()
    if not watch:
        if output == "json":
            body = snapshot.as_dict()
            body["definitions"] = [
                {
                    "name": d.name,
                    "revision": d.revision,
                    "arn": d.arn,
                    "manifest": d.manifest,
                    "commit": d.commit_sha,
                    "author": d.author,
                }
                for d in _definitions(ledger)
            ]
            click.echo(json.dumps(body, indent=2))
            return
        console = Console()
        console.print(status_table(snapshot))
        if snapshot.schedules:
            schedules = Table("queue", "schedule", "cron", "time zone", "last run", "manifest")
            schedules.title = "Schedules"
            for row in snapshot.schedules:
                schedules.add_row(
                    row["queue"],
                    row["name"],
                    row["cron"],
                    row["timezone"],
                    row["last_run"] or "-",
                    row["manifest"],
                )
            console.print(schedules)
        table = Table("definition", "revision", "manifest", "commit", title="Job definitions")
        for d in _definitions(ledger):
            table.add_row(d.name, str(d.revision), d.manifest, d.commit_sha[:12])
        console.print(table)
        return

    deadline = None if limit is None else time.monotonic() + limit
    if output == "json":
        sys.exit(_watch_json(take, snapshot, every, deadline))
    sys.exit(_watch_live(take, snapshot, every, deadline))


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _pause(every: float, deadline: float | None) -> None:
    wait = every if deadline is None else max(0.0, min(every, deadline - time.monotonic()))
    time.sleep(wait)


def _watch_json(take: Any, snapshot: Snapshot, every: float, deadline: float | None) -> int:
    """A JSON line whenever the picture changes, and a last one when it is final."""
    last = ""
    while True:
        body = json.dumps(snapshot.as_dict(), sort_keys=True)
        if body != last or snapshot.done:
            click.echo(dumps_line(snapshot, time.time()))
            sys.stdout.flush()
            last = body
        if snapshot.done:
            return _exit_code(snapshot)
        if _expired(deadline):
            return EXIT_TIMEOUT
        _pause(every, deadline)
        snapshot = take()


def _watch_live(take: Any, snapshot: Snapshot, every: float, deadline: float | None) -> int:
    console = Console()

    def frame(current: Snapshot, note: str) -> Group:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(current.counts().items()))
        return Group(status_table(current), Text(f"{counts or 'no jobs'}  {note}", style="dim"))

    with Live(frame(snapshot, "watching"), console=console, refresh_per_second=4) as live:
        try:
            while not snapshot.done:
                if _expired(deadline):
                    live.update(frame(snapshot, "timed out"))
                    return EXIT_TIMEOUT
                _pause(every, deadline)
                snapshot = take()
                live.update(frame(snapshot, f"refreshed {time.strftime('%H:%M:%S')}"))
        except KeyboardInterrupt:
            return 130
        live.update(frame(snapshot, "all shown jobs have ended"))
    return _exit_code(snapshot)
