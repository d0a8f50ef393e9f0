"""The look of every table dialq prints: one that fits the terminal, 80 columns or fewer.

No vertical rules and one space between columns leave room for what must stay whole on one line
(ids, masked numbers, times with their offset), which the caller marks `no_wrap`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

# A flag, not an option taking a value: an empty metavar keeps help from showing `<bool>`.
Json = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON.")]

# Each column costs its width, one space of padding and one space of rule (but the last: no rule).
_COLUMN_GAP = 2


def error_console() -> Console:
    """Stderr whose lines are never broken by us: a terminal wraps them, a pipe keeps them whole."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


def compact_table(*columns: Column | str, title: str | None = None) -> Table:
    return Table(
        *columns,
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )


@dataclass(frozen=True)
class Fit:
    """A column of a fitted table.

    `wraps`: its cells may be wrapped down to `min_width` (words first, then long words folded);
    the others are kept whole on one line. `drop`: when the terminal is too narrow for every
    column, the one with the highest `drop` is left out first (0: never left out).
    """

    header: str
    wraps: bool = False
    min_width: int = 10
    drop: int = 0


@dataclass(frozen=True)
class Fitted:
    table: Table
    hidden: list[str]

    def print(self, console: Console) -> None:
        console.print(self.table)
        if self.hidden:
            left_out = ", ".join(self.hidden)
            console.print(f"(not shown at this width: {left_out}; use --json)", markup=False)


def fitted_table(columns: Sequence[Fit], rows: Sequence[Sequence[str]], width: int) -> Fitted:
    """A table of `rows` no wider than `width`, every column given an exact width.

    Rich shrinks an over-wide table by its own rules, which cut characters off folded cells and
    drop columns without a word; here columns are left out by `drop` and named instead.
    """
    natural = [
        max([cell_len(column.header), *(cell_len(row[i]) for row in rows)])
        for i, column in enumerate(columns)
    ]

    def least(index: int) -> int:
        column = columns[index]
        return min(natural[index], column.min_width) if column.wraps else natural[index]

    budget = width + 1  # the last column has no rule after it
    shown = list(range(len(columns)))
    while sum(least(i) + _COLUMN_GAP for i in shown) > budget:
        droppable = [i for i in shown if columns[i].drop]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: columns[i].drop))
    widths = {i: least(i) for i in shown}
    spare = budget - sum(widths[i] + _COLUMN_GAP for i in shown)
    # The nearest to whole first, so that as many cells as possible fit on one line.
    for i in sorted(shown, key=lambda i: natural[i] - widths[i]):
        grow = max(0, min(spare, natural[i] - widths[i]))
        widths[i] += grow
        spare -= grow
    table = compact_table(
        *(
            Column(
                columns[i].header,
                width=widths[i],
                no_wrap=not columns[i].wraps,
                overflow="fold" if columns[i].wraps else "ellipsis",
            )
            for i in shown
        )
    )
    for row in rows:
        table.add_row(*(Text(row[i]) for i in shown))
    return Fitted(table, [columns[i].header for i in range(len(columns)) if i not in shown])


def print_json(value: Any) -> None:
    """Indented JSON on stdout; times and ids as strings."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
