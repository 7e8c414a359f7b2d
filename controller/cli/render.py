"""Human output of the CLI and the demo: pass summaries and rich tables."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

_SIGN = {"register": "+", "submit": "+", "cancel": "-", "terminate": "-", "deregister": "-"}


def print_pass(result: Any, output: str, console: Console) -> None:
    if output == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    data = result.as_dict()
    if data["revision"]:
        console.print(
            f"revision [bold]{data['revision'][:12]}[/] by {data['author']}: {data['message']}",
            highlight=False,
        )
    elif data["message"]:
        console.print(f"[red]error:[/] {data['message']}", highlight=False)
    for error in data["errors"]:
        console.print(
            f"[red]invalid[/] {error['path']}: {error['field'] or '-'}: {error['message']}",
            highlight=False,
        )
    for action in data["actions"]:
        target = f"{action.get('queue', '')}/{action['name']}".lstrip("/")
        status = f" -> {action['result']}" if "result" in action else ""
        extra = f" {action.get('id', '')}" if action.get("id") else ""
        message = f" ({action['message']})" if action.get("message") else ""
        console.print(
            f"{_SIGN[action['action']]} {action['action']:<10} {action['kind']:<15}"
            f"{target} [dim]{action['manifest']} [{action['reason']}][/]"
            f"{status}{extra}{message}",
            highlight=False,
        )
    for action in data["held"]:
        console.print(
            f"! held       {action['kind']:<15}{action.get('queue', '')}/"
            f"{action['name']} [dim]{action['manifest']}[/]",
            highlight=False,
        )
    if data["held_reason"]:
        console.print(f"[yellow]held:[/] {data['held_reason']}", highlight=False)
    for key, why in data["waiting"].items():
        console.print(f"[yellow]waiting[/] {key}: {why}", highlight=False)
    if not data["actions"] and not data["held"] and not data["errors"] and data["revision"]:
        console.print("in sync: nothing to do")


def jobs_table(jobs: list[Any]) -> Table:
    colors = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "cyan", "STARTING": "cyan"}
    table = Table("queue", "job", "status", "job id", "manifest", "commit", title="Jobs")
    for r in jobs:
        status_text = r.status or r.state
        if r.array_summary:
            done = r.array_summary.get("SUCCEEDED", 0)
            total = sum(r.array_summary.values())
            status_text += f" ({done}/{total})"
        color = colors.get(r.status or "", "yellow")
        table.add_row(
            r.queue,
            r.name,
            f"[{color}]{status_text}[/]",
            r.job_id or "-",
            r.manifest,
            r.revision[:12],
        )
    return table
