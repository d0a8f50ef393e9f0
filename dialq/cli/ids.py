"""Call ids as people read and type them: short in tables, whole or a unique start as arguments."""

from __future__ import annotations

import typer
from rich.console import Console

from dialq.config import Settings
from dialq.store import Database, Session, calls_repo
from dialq.store.tables import Call

EXIT_INVALID = 2
SHORT_ID_LENGTH = 8  # what tables print; unique among a great many calls, easy to type
MIN_PREFIX_LENGTH = 4  # the shortest start of an id calls_repo.find_call looks up
CALL_ID_HELP = "The call's id, or the start of it that `dialq calls` prints."


def short_id(call_id: str | None) -> str:
    return (call_id or "")[:SHORT_ID_LENGTH]


def require_call(session: Session, given: str, err: Console) -> Call:
    """The call `given` names (see calls_repo.find_call); exit 1 when none, 2 when ambiguous."""
    try:
        found = calls_repo.find_call(session, given)
    except calls_repo.AmbiguousCallId:
        err.print(
            f"call_id: {given!r} starts the ids of several calls; give more of it",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INVALID) from None
    if found is None and len(given) < MIN_PREFIX_LENGTH:
        err.print(
            f"call_id: {given!r} is too short; give at least "
            f"{MIN_PREFIX_LENGTH} characters of the id (`dialq calls` prints "
            f"{SHORT_ID_LENGTH})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INVALID)
    if found is None:
        err.print(f"no call {given}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    return found


def database(settings: Settings) -> Database:
    """The process runtime's database (migrated first when DIALQ_AUTO_MIGRATE is on)."""
    from dialq.api import producer_runtime  # imports Celery only when needed

    return producer_runtime(settings).db
