"""`dialq transcript` and the insights part of `dialq show`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from dialq.api import producer_runtime
from dialq.calls.states import TERMINAL, CallStatus
from dialq.cli.ids import CALL_ID_HELP, require_call
from dialq.cli.output import error_console
from dialq.config import Settings
from dialq.insights.transcript import TranscriptFormat, insights_lines, render
from dialq.store import insights_repo

err = error_console()


def never_connected(status: str, connected: bool) -> str | None:
    """Why a call has no insights at all, when the reason is that it never talked to anyone."""
    if connected:
        return None
    if CallStatus(status) in TERMINAL:
        return f"this call never connected (it is {status}), so it has no transcript"
    return f"this call has not connected yet (it is {status})"


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
    problem = _not_there(call_id, insights, never_connected(status, connected))
    if problem:
        err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    assert insights is not None
    sys.stdout.write(render(insights["messages"], fmt))


def _not_there(
    call_id: str, insights: dict[str, Any] | None, unconnected: str | None
) -> str | None:
    """Why there is no transcript to print, or None when there is one."""
    if insights is None and unconnected:
        return f"no transcript for {call_id}: {unconnected}"
    if insights is None:
        return f"no transcript for {call_id} yet: insights not harvested (has the call ended?)"
    if insights["status"] == "pending":
        why = f" ({insights['reason']})" if insights["reason"] else ""
        return f"no transcript for {call_id} yet: insights still pending{why}"
    if not insights["messages"]:
        return f"no transcript for {call_id}: insights {insights['status']} ({insights['reason']})"
    return None
