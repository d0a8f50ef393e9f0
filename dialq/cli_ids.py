"""Turning what a person typed into a call id, for `dialq show`, `cancel` and `transcript`."""

from __future__ import annotations

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from dialq.store import calls_repo

EXIT_INVALID = 2
CALL_ID_HELP = "The call's id, or the start of it that `dialq calls` prints."


def require_call_id(session: Session, given: str, err: Console) -> str:
    """The whole id of the call `given` names; exit 1 when there is none, 2 when ambiguous."""
    try:
        found = calls_repo.resolve_call_id(session, given)
    except calls_repo.AmbiguousCallId:
        err.print(
            f"call_id: {given!r} starts the ids of several calls; give more of it",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INVALID) from None
    if found is None:
        err.print(f"no call {given}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    return found
