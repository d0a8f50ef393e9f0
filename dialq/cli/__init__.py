"""The `dialq` command line: entry (app, main), calls, schedules, insights, ids, output."""

from dialq.cli.entry import main

__all__ = ["main"]
