"""The look of every table dialq prints: one that fits an 80-column terminal.

No vertical rules and one space between columns leave room for what must stay whole on one line
(ids, masked numbers, times with their offset), which the caller marks `no_wrap`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich import box
from rich.table import Column, Table


def compact_table(*columns: Column | str, title: str | None = None) -> Table:
    return Table(
        *columns,
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )


def print_json(value: Any) -> None:
    """Indented JSON on stdout; times and ids as strings."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
