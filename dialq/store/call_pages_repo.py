"""Calls a page at a time for the HTTP API: filtered, newest first, continued by a cursor.

The order is `calls_repo.list_calls`' (newest first, ties by id), read off ix_calls_created; a
cursor is the (created_at, id) of the last call of the previous page, so a call written while
a client pages through never shifts the pages it has not read yet.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from dialq.store.tables import Call


@dataclass(frozen=True)
class CallFilter:
    """Which calls: always within `accounts`; the other fields narrow further when set."""

    accounts: Collection[str]
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def page_of_calls(
    session: Session,
    where: CallFilter,
    *,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[Call]:
    """Up to `limit` calls matching `where`, newest first, after the cursor `after`."""
    query = select(Call).where(Call.account.in_(sorted(where.accounts)))
    if where.status is not None:
        query = query.where(Call.status == where.status)
    if where.created_after is not None:
        query = query.where(Call.created_at > where.created_after)
    if where.created_before is not None:
        query = query.where(Call.created_at < where.created_before)
    if after is not None:
        created, call_id = after
        query = query.where(
            or_(Call.created_at < created, and_(Call.created_at == created, Call.id > call_id))
        )
    query = query.order_by(Call.created_at.desc(), Call.id).limit(limit)
    return list(session.scalars(query))
