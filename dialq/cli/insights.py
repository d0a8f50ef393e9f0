"""`dialq transcript` and the insights part of `dialq show`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from dialq.api import producer_runtime
from dialq.cli.ids import CALL_ID_HELP, require_call
from dialq.cli.output import error_console
from dialq.config import Settings
from dialq.insights.availability import missing_transcript, never_connected
from dialq.insights.transcript import TranscriptFormat, insights_lines, render
from dialq.store import insights_repo

err = error_console()


def print_insights(
    console: Console, insights: dict[str, Any] | None, detail: dict[str, Any]
) -> None:
    """After the timeline: the transcript and insights, or why there are none yet."""
    if insights is None:
        connected = detail["connected_at"] is not None
        why = never_connected(detail["status"], connected) or "not harvested yet"
        console.print(f"insights: {why}", highlight=False, soft_wrap=True)
        return
    for line in insights_lines(insights):
        # Speech may hold [brackets]: never read it as console markup.
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def transcript_command(
    call_id: Annotated[str, typer.Argument(help=CALL_ID_HELP)],
    fmt: Annotated[
        TranscriptFormat, typer.Option("--format", help="text, srt (subtitles) or json.")
    ] = TranscriptFormat.TEXT,
) -> None:
    """Print a call's transcript once its insights are harvested."""

    db = producer_runtime(Settings()).db
    with db.sessions() as session:
        found = require_call(session, call_id, err)
        call_id, status, connected = found.id, found.status, found.connected_at is not None
        insights = insights_repo.load_insights(session, call_id)
    missing = missing_transcript(status, connected, insights)
    if missing is not None or insights is None:
        why = missing.reason if missing else "no insights"
        err.print(f"no transcript for {call_id}: {why}", highlight=False, markup=False,
                  soft_wrap=True)  # fmt: skip
        raise typer.Exit(1)
    sys.stdout.write(render(insights["messages"], fmt))
