"""Tables that fit the terminal by dropping columns, never by cutting names.

rich shrinks every column of a table that is too wide, so at 80 columns
``train-model-42`` and ``train-model-experiment-42`` both read ``train-mod…``.
:func:`fitted_table` instead keeps the columns by priority while the table fits
(a column whose cells are all empty is left out), shows every kept cell whole,
and says which columns it left out. Used by ``status`` and the demo.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

Cell = str | Text


@dataclass(frozen=True)
class Column:
    header: str
    priority: int  # 0: always shown; higher numbers go first when space runs out
    style: str = ""


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _build(columns: list[Column], rows: list[list[Cell]], keep: list[int], title: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title)
    for index in keep:
        column = columns[index]
        width = max([len(column.header), *(len(_plain(row[index])) for row in rows)])
        # Never truncated: each kept column gets its whole width, or folds if alone too wide.
        table.add_column(column.header, min_width=width, no_wrap=False, overflow="fold")
    for row in rows:
        table.add_row(*(row[index] for index in keep))
    return table


def fitted_table(
    console: Console,
    columns: list[Column],
    rows: list[list[Cell]],
    title: str = "",
    more: str = "--output json has every field",
) -> RenderableType:
    """The widest table of ``columns`` (by priority) that fits ``console``'s width."""
    present = [i for i in range(len(columns)) if not rows or any(_plain(r[i]) for r in rows)]
    keep = [i for i in present if columns[i].priority == 0]
    unbounded = console.options.update(max_width=1_000_000)  # the table's natural width
    for index in sorted(
        (i for i in present if columns[i].priority), key=lambda i: columns[i].priority
    ):
        trial = sorted([*keep, index])
        table = _build(columns, rows, trial, title)
        if Measurement.get(console, unbounded, table).maximum <= console.width:
            keep = trial
    table = _build(columns, rows, keep, title)
    left_out = [columns[i].header for i in present if i not in keep]
    if not left_out:
        return table
    note = Text(
        f"(not shown at this width: {', '.join(left_out)}; {more})",
        style="dim",
    )
    return Group(table, note)
