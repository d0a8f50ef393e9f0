"""The waiting line as the database holds it (the truth the Redis index is repaired from).

Each query returns a bounded page, so a watchdog tick costs the same at 10 waiting calls and at
100,000.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dialq.calls.states import CallStatus
from dialq.store.tables import Call

Waiter = tuple[str, int, datetime]  # id, priority, created_at


def _waiting(account: str) -> Any:  # a Select; its generic form differs in SQLAlchemy 2.0/2.1
    return select(Call.id, Call.priority, Call.created_at).where(
        Call.account == account,
        Call.status == CallStatus.WAITING.value,
        Call.not_before.is_(None),
    )


def accounts_waiting(session: Session) -> list[str]:
    """Accounts with at least one call waiting for a permit."""
    query = select(Call.account).where(Call.status == CallStatus.WAITING.value).distinct()
    return list(session.scalars(query))


def head_of_line(session: Session, account: str, limit: int) -> list[Waiter]:
    """The first `limit` waiters in line order: priority first, then first come."""
    query = _waiting(account).order_by(Call.priority.desc(), Call.created_at, Call.id)
    return [(r.id, r.priority, r.created_at) for r in session.execute(query.limit(limit))]


def waiters_after(session: Session, account: str, after_id: str, limit: int) -> list[Waiter]:
    """A page of waiters by id, after `after_id`: the watchdog's repair walks the whole line a
    page per tick."""
    query = _waiting(account).where(Call.id > after_id).order_by(Call.id).limit(limit)
    return [(r.id, r.priority, r.created_at) for r in session.execute(query)]
