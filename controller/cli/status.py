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
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from controller.cli.common import (
    OUTPUT,
    VERBOSE,
    build_settings,
    configure_logs,
    open_batch,
    open_ledger_for,
)
from controller.cli.render import STATUS_COLORS, error_line, human_console, plural
from controller.cli.status_view import DependencyCache, JobView, Snapshot, collect, dumps_line
from controller.cli.tables import Column, fitted_table
from controller.settings import parse_duration

EXIT_TIMEOUT = 124
# Job and status are never cut; the rest as the terminal's width allows.
STATUS_COLUMNS = [
    Column("job", 0),
    Column("status", 0),
    Column("queue", 1),
    Column("array", 2),
    Column("after", 3),
    Column("manifest", 4),
    Column("commit", 5),
    Column("job id", 6),
]


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


def status_table(console: Console, snapshot: Snapshot, title: str = "Jobs") -> RenderableType:
    rows: list[list[str | Text]] = []
    for view in snapshot.views:
        r = view.record
        status = view.display
        if view.blocked:
            status += f" (upstream {', '.join(view.blocked_by)} failed)"
        indent = "  " * view.depth + ("└ " if view.depth else "")
        rows.append(
            [
                indent + r.name,
                Text(status, style=STATUS_COLORS.get(view.display, "yellow")),
                r.queue,
                progress_text(view),
                ", ".join(view.upstream),
                r.manifest,
                r.revision[:12],
                r.job_id or "-",
            ]
        )
    return fitted_table(console, STATUS_COLUMNS, rows, title=title)


def invalid_manifests(ledger: Any) -> dict[str, Any]:
    """What the last pass that read the source found invalid: {"revision", "errors"}."""
    from controller.engine.reconcile import INVALID_META

    stored = ledger.get_meta(INVALID_META)
    return json.loads(stored) if stored else {"revision": "", "errors": []}


def _definitions(ledger: Any) -> list[Any]:
    return [d for revisions in ledger.active_definitions().values() for d in revisions]


def _exit_code(snapshot: Snapshot) -> int:
    return 0 if snapshot.ok else 1


@click.command()
@click.option(
    "--state", metavar="LEDGER", help="Ledger file or dynamodb://TABLE. [env: BATCH_GITOPS_STATE]"
)
@click.option(
    "--offline",
    is_flag=True,
    help="Show the ledger's last known statuses only (no AWS call, no region needed).",
)
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
@VERBOSE
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

    A job whose upstream FAILED is shown as BLOCKED; invalid manifests of the last pass
    are listed. Exit 1 when there is no ledger or AWS Batch could not be read. With
    --watch: exit 0 when every shown job SUCCEEDED, 1 when they ended otherwise, 124 on
    --timeout.
    """
    try:
        every = parse_duration(interval)
        limit = parse_duration(timeout) if timeout else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    settings = build_settings(state=state)
    configure_logs(settings)
    ledger = open_ledger_for(settings, "read")
    api = None if offline else open_batch(settings)  # --offline needs no region
    cache = DependencyCache()
    unread: list[str] = []

    def take() -> Snapshot:
        watched = None
        if api is not None:
            from controller.cli.aws_reads import WatchedBatch

            watched = WatchedBatch(api)
        snapshot = collect(
            ledger,
            None if watched is None else watched.as_api(),
            cache,
            show_all=show_all,
            names=names,
            queues=queues,
        )
        unread[:] = watched.failures[:1] if watched is not None else []
        return snapshot

    snapshot = take()
    invalid = invalid_manifests(ledger)
    if not watch:
        if output == "json":
            body = snapshot.as_dict()
            body["ledger"] = str(settings.state)
            body["aws_read"] = api is not None and not unread
            body["aws_error"] = unread[0] if unread else None
            body["invalid_manifests"] = invalid
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
            sys.exit(1 if unread else 0)
        console = human_console()
        _print_status(console, snapshot, ledger, invalid)
        console.print(f"[dim]ledger: {settings.state}[/]", highlight=False)
        if unread:
            click.echo(
                f"error: AWS Batch could not be read ({unread[0]}); the statuses shown are "
                "the ledger's last known ones (--offline shows them without asking AWS)",
                err=True,
            )
        sys.exit(1 if unread else 0)

    deadline = None if limit is None else time.monotonic() + limit
    if output == "json":
        sys.exit(_watch_json(take, snapshot, every, deadline))
    sys.exit(_watch_live(take, snapshot, every, deadline))


SCHEDULE_COLUMNS = [
    Column("schedule", 0),
    Column("cron", 0),
    Column("time zone", 1),
    Column("last run", 2),
    Column("queue", 3),
    Column("manifest", 4),
]
DEFINITION_COLUMNS = [
    Column("definition", 0),
    Column("revision", 0),
    Column("manifest", 1),
    Column("commit", 2),
]


def _print_status(
    console: Console, snapshot: Snapshot, ledger: Any, invalid: dict[str, Any]
) -> None:
    console.print(status_table(console, snapshot))
    if snapshot.schedules:
        rows: list[list[str | Text]] = [
            [
                row["name"],
                row["cron"],
                row["timezone"],
                row["last_run"] or "-",
                row["queue"],
                row["manifest"],
            ]
            for row in snapshot.schedules
        ]
        console.print(fitted_table(console, SCHEDULE_COLUMNS, rows, title="Schedules"))
    definitions: list[list[str | Text]] = [
        [d.name, str(d.revision), d.manifest, d.commit_sha[:12]] for d in _definitions(ledger)
    ]
    console.print(fitted_table(console, DEFINITION_COLUMNS, definitions, title="Job definitions"))
    if invalid["errors"]:
        console.print(
            f"[red]{plural(len(invalid['errors']), 'invalid manifest')}[/] at "
            f"{invalid['revision'][:12]} (not applied, not pruned):",
            highlight=False,
        )
        for error in invalid["errors"]:
            console.print(f"  {error_line(error)}", highlight=False, markup=False)


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
    console = human_console()

    def frame(current: Snapshot, note: str) -> Group:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(current.counts().items()))
        return Group(
            status_table(console, current), Text(f"{counts or 'no jobs'}  {note}", style="dim")
        )

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
