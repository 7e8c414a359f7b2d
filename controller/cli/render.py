"""Human output of the CLI and the demo: pass summaries and job tables.

Everything here goes to stdout through :func:`human_console`: colours only on a
terminal and never with ``NO_COLOR`` (rich honours it), and no hard wrap when
stdout is a pipe or a file, so a path in a CI log is never split.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.text import Text

from controller.cli.tables import Column, fitted_table

_SIGN = {"register": "+", "submit": "+", "cancel": "-", "terminate": "-", "deregister": "-"}
STATUS_COLORS = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "BLOCKED": "red",
    "RUNNING": "cyan",
    "STARTING": "cyan",
    "FORGOTTEN": "dim",
}


def human_console() -> Console:
    """stdout for people: soft-wrapped (never hard-wrapped) when it is not a terminal."""
    console = Console()
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 job definition``, ``2 job definitions``."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def error_line(error: dict[str, str]) -> str:
    """``path: field: message``, or ``path: message`` for a whole-file problem."""
    field = f"{error['field']}: " if error.get("field") else ""
    return f"{error['path']}: {field}{error['message']}"


def print_pass(data: dict[str, Any], output: str, console: Console, *, applied: bool) -> None:
    """A pass summary (``aws_reads.pass_summary``): what was (or would be) done, then one
    verdict line. "in sync" only when AWS Batch was read and nothing is left to do."""
    if output == "json":
        click.echo(json.dumps(data, indent=2))
        return

    def say(markup: str) -> None:
        console.print(markup, highlight=False)

    if data["revision"]:
        say(f"revision [bold]{data['revision'][:12]}[/] by {data['author']}")
    failed = data["result"] not in ("ok", "degraded") and data["message"]
    if failed:
        say(f"[red]error:[/] {data['message']}")
    for error in data["errors"]:
        say(f"[red]invalid[/] {error_line(error)}")
    for action in data["actions"]:
        target = f"{action.get('queue', '')}/{action['name']}".lstrip("/")
        status = f" -> {action['result']}" if "result" in action else ""
        extra = f" {action.get('id', '')}" if action.get("id") else ""
        message = f" ({action['message']})" if action.get("message") else ""
        say(
            f"{_SIGN[action['action']]} {action['action']:<10} {action['kind']:<15}"
            f"{target} [dim]{action['manifest']} [{action['reason']}][/]"
            f"{status}{extra}{message}"
        )
    for action in data["held"]:
        say(
            f"! held       {action['kind']:<15}{action.get('queue', '')}/"
            f"{action['name']} [dim]{action['manifest']}[/]"
        )
    if data["held_reason"]:
        say(f"[yellow]held:[/] {data['held_reason']}")
    for key, why in data["waiting"].items():
        say(f"[yellow]waiting[/] {key}: {why}")
    if not failed and data["message"]:
        say(f"[yellow]note:[/] {data['message']}")
    say(_verdict(data, applied))
    say(f"[dim]ledger: {data['ledger']}[/]")


def _verdict(data: dict[str, Any], applied: bool) -> str:
    if data["result"] not in ("ok", "degraded"):
        done = sum(1 for a in data["actions"] if a.get("result") == "ok")
        if applied and data["actions"]:
            return (
                f"[red]{data['result']}:[/] not in sync; {done} of "
                f"{plural(len(data['actions']), 'change')} applied"
            )
        return f"[red]{data['result']}:[/] not in sync; nothing " + (
            "applied" if applied else "planned"
        )
    parts = []
    if data["actions"]:
        done = sum(1 for a in data["actions"] if a.get("result") == "ok")
        parts.append(
            f"{done} of {plural(len(data['actions']), 'change')} applied"
            if applied
            else f"{plural(len(data['actions']), 'change')} pending"
        )
    if data["held"]:
        parts.append(f"{plural(len(data['held']), 'prune')} held")
    if data["waiting"]:
        parts.append(f"{len(data['waiting'])} waiting on an unknown status")
    if data["errors"]:
        parts.append(f"{plural(len(data['errors']), 'invalid manifest')} skipped")
    if parts:
        return "; ".join(parts)
    if not data["aws_read"]:
        return "nothing to do (AWS Batch was not read: no job or definition to compare)"
    return "[green]in sync:[/] nothing to do (AWS Batch read)"


def job_rows(jobs: list[Any]) -> list[list[str | Text]]:
    rows: list[list[str | Text]] = []
    for r in jobs:
        status_text = r.status or r.state
        if r.array_summary:
            done = r.array_summary.get("SUCCEEDED", 0)
            total = sum(r.array_summary.values())
            status_text += f" ({done}/{total})"
        color = STATUS_COLORS.get(r.status or "", "yellow")
        rows.append(
            [
                r.name,
                Text(status_text, style=color),
                r.queue,
                r.manifest,
                r.revision[:12],
                r.job_id or "-",
            ]
        )
    return rows


JOB_COLUMNS = [
    Column("job", 0),
    Column("status", 0),
    Column("queue", 1),
    Column("manifest", 2),
    Column("commit", 3),
    Column("job id", 4),
]


def jobs_table(
    console: Console, jobs: list[Any], more: str = "widen the terminal"
) -> RenderableType:
    """The demo's table: job and status always whole; queue, manifest, commit, job id
    as the width allows."""
    return fitted_table(console, JOB_COLUMNS, job_rows(jobs), title="Jobs", more=more)
