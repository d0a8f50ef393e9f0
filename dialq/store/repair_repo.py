"""The watchdog's queries: calls stuck in a state longer than anything legitimate keeps them.

Each returns at most `limit` ids, so one tick does bounded work and the next takes the rest.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from dialq.calls.states import TERMINAL, CallStatus
from dialq.store.tables import Call

BATCH = 500


def _ids(session: Any, *conditions: Any, limit: int = BATCH) -> list[str]:
    return list(session.scalars(select(Call.id).where(*conditions).limit(limit)))


def stale_dialing(session: Any, claimed_before: datetime) -> list[str]:
    return _ids(session, Call.status == CallStatus.DIALING.value, Call.claimed_at < claimed_before)


def unknown_since(session: Any, updated_before: datetime) -> list[str]:
    # A call canceled while its outcome was unknown is never dialed again.
    return _ids(
        session,
        Call.status == CallStatus.UNKNOWN.value,
        Call.updated_at < updated_before,
        Call.cancel_requested_at.is_(None),
    )


def count_in(session: Any, status: CallStatus) -> int:
    return int(session.scalar(select(func.count()).where(Call.status == status.value)) or 0)


def overdue_watches(session: Any, due_before: datetime) -> list[str]:
    """Live calls whose next look should have happened before `due_before`."""
    return _ids(
        session,
        Call.status.in_([CallStatus.CONNECTED.value, CallStatus.STOPPING.value]),
        or_(Call.watch_due_at.is_(None), Call.watch_due_at < due_before),
        Call.connected_at < due_before,
    )


def in_states(session: Any, ids: Collection[str], statuses: Collection[CallStatus]) -> list[str]:
    """Which of `ids` are in one of `statuses`."""
    if not ids:
        return []
    return _ids(session, Call.id.in_(list(ids)), Call.status.in_([s.value for s in statuses]))


def unknown(session: Any, ids: Collection[str]) -> list[str]:
    """Which of `ids` name no call (a permit taken for a row its producer never wrote)."""
    if not ids:
        return []
    known = set(session.scalars(select(Call.id).where(Call.id.in_(list(ids)))))
    return [call_id for call_id in ids if call_id not in known]


def over(session: Any, ids: Collection[str]) -> list[str]:
    """Which of `ids` are finished for good."""
    return in_states(session, ids, TERMINAL)


def expired_waiters(
    session: Any, accounts: Collection[str], now: datetime
) -> list[tuple[str, str]]:
    """(id, account) of waiting calls of `accounts` past their deadline: one query for all."""
    if not accounts:
        return []
    query = (
        select(Call.id, Call.account)
        .where(
            Call.status == CallStatus.WAITING.value,
            Call.deadline_at <= now,
            Call.account.in_(list(accounts)),
        )
        .limit(BATCH)
    )
    return [(row.id, row.account) for row in session.execute(query)]
