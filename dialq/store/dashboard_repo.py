"""What the dashboard reads beyond the API's pages: counts per state, the waiting line in the
order the dispatcher serves it, and the spans during which calls were live."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dialq.store import state_counts
from dialq.store.tables import Call


def status_counts(session: Session, accounts: Collection[str]) -> dict[str, int]:
    """The accounts' calls by state (states with none absent), from the counts the triggers keep:
    a refresh costs the changes since the watchdog's last fold, not the accounts' history. It
    does not fold itself: a page refresh stays a read, never taking the write lock."""
    return state_counts.count_by_status(session, accounts)


def waiting_line(session: Session, accounts: Collection[str], *, limit: int) -> list[Call]:
    """Waiting calls as the dispatcher takes them: highest priority first, then oldest."""
    query = (
        select(Call)
        .where(Call.account.in_(sorted(accounts)), Call.status == "waiting")
        .order_by(Call.priority.desc(), Call.created_at, Call.id)
        .limit(limit)
    )
    return list(session.scalars(query))


LiveSpan = tuple[str, datetime, datetime | None]


def live_spans(session: Session, accounts: Collection[str], since: datetime) -> list[LiveSpan]:
    """(account, connected at, ended at or None) of every call live at some time after `since`."""
    query = select(Call.account, Call.connected_at, Call.ended_at).where(
        Call.account.in_(sorted(accounts)),
        Call.connected_at.is_not(None),
        or_(Call.ended_at.is_(None), Call.ended_at > since),
    )
    return [(str(a), c, e) for a, c, e in session.execute(query) if c is not None]
