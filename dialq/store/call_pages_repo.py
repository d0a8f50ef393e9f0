"""Calls a page at a time for the HTTP API: filtered, newest first, continued by a cursor.

The order is `calls_repo.list_calls`' (newest first, ties by id), read off ix_calls_created; a
cursor is the (created_at, id) of the last call of the previous page, so a call written while
a client pages through never shifts the pages it has not read yet. Filters keep that order: a
page is the next `limit` matching calls after the cursor, whatever they are.

`schedule` reads through the occurrences' call_id index. `search` has no index of its own (a
session name lives in the stored request): the calls are read newest first off ix_calls_created
and tested, so a page stops as soon as it is full, and the term is bounded by its caller.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from dialq.store.schedule_tables import Occurrence, Schedule
from dialq.store.tables import Call

_LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class CallFilter:
    """Which calls: within `accounts` (None: every account); the other fields narrow further
    when set. `search` matches a part of the session name, whatever its case."""

    accounts: Collection[str] | None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    schedule: str | None = None
    search: str | None = None


def page_of_calls(
    session: Session,
    where: CallFilter,
    *,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[Call]:
    """Up to `limit` calls matching `where`, newest first, after the cursor `after`."""
    query = select(Call).where(*_conditions(where))
    if after is not None:
        created, call_id = after
        query = query.where(
            or_(Call.created_at < created, and_(Call.created_at == created, Call.id > call_id))
        )
    query = query.order_by(Call.created_at.desc(), Call.id).limit(limit)
    return list(session.scalars(query))


def _conditions(where: CallFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.accounts is not None:
        conditions.append(Call.account.in_(sorted(where.accounts)))
    if where.status is not None:
        conditions.append(Call.status == where.status)
    if where.created_after is not None:
        conditions.append(Call.created_at > where.created_after)
    if where.created_before is not None:
        conditions.append(Call.created_at < where.created_before)
    if where.schedule is not None:
        placed = (
            select(Occurrence.call_id)
            .join(Schedule, Schedule.id == Occurrence.schedule_id)
            .where(Schedule.name == where.schedule, Occurrence.call_id.is_not(None))
        )
        conditions.append(Call.id.in_(placed))
    if where.search:
        name = func.lower(Call.request["session_name"].as_string())
        conditions.append(name.like(f"%{_escaped(where.search.lower())}%", escape=_LIKE_ESCAPE))
    return conditions


def _escaped(term: str) -> str:
    """`term` matched as it is: LIKE's wildcards in it are plain characters."""
    for char in (_LIKE_ESCAPE, "%", "_"):
        term = term.replace(char, _LIKE_ESCAPE + char)
    return term
