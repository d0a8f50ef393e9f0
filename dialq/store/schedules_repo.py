"""Queries on schedules and occurrences. Advancing a schedule is one conditional UPDATE."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, object_session

from dialq.store.schedule_tables import Occurrence, Outcome, Schedule
from dialq.store.tables import Call


def find(session: Session, name: str) -> Schedule | None:
    return session.scalars(select(Schedule).where(Schedule.name == name)).one_or_none()


def list_schedules(session: Session) -> list[Schedule]:
    return list(session.scalars(select(Schedule).order_by(Schedule.name)))


def due(session: Session, horizon: datetime, *, limit: int) -> list[Schedule]:
    """Schedules whose next occurrence is at or before `horizon`, soonest first.

    Reads the `next_due_at` index only: paused and finished schedules hold NULL there, and
    schedules not yet due are never touched, however many are stored.
    """
    query = (
        select(Schedule)
        .where(Schedule.next_due_at <= horizon)
        .order_by(Schedule.next_due_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def advance(
    session: Session,
    schedule_id: str,
    *,
    from_due: datetime,
    to_due: datetime | None,
    now: datetime,
    last_call_id: str | None = None,
) -> bool:
    """Move `next_due_at` from `from_due` to `to_due`; False if another tick (or an edit) did."""
    values: dict[str, object] = {"next_due_at": to_due, "updated_at": now}
    if last_call_id is not None:
        values["last_call_id"] = last_call_id
    result = session.execute(
        update(Schedule)
        .where(Schedule.id == schedule_id, Schedule.next_due_at == from_due)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def add_occurrence(
    session: Session,
    schedule_id: str,
    occurrence_at: datetime,
    outcome: Outcome,
    *,
    now: datetime,
    call_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Record what became of one occurrence; a second record of it violates the unique key."""
    session.add(
        Occurrence(
            schedule_id=schedule_id,
            occurrence_at=occurrence_at,
            outcome=outcome.value,
            call_id=call_id,
            recorded_at=now,
            detail=detail,
        )
    )
    session.flush()


def recent_occurrences(session: Session, schedule_id: str, *, limit: int) -> list[Occurrence]:
    query = (
        select(Occurrence)
        .where(Occurrence.schedule_id == schedule_id)
        .order_by(Occurrence.occurrence_at.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def occurrence_of_call(session: Session, call_id: str) -> tuple[Occurrence, str] | None:
    """The occurrence that placed `call_id`, with its schedule's name."""
    query = (
        select(Occurrence, Schedule.name)
        .join(Schedule, Schedule.id == Occurrence.schedule_id)
        .where(Occurrence.call_id == call_id)
    )
    row = session.execute(query).first()
    return (row[0], row[1]) if row else None


def occurrence_of_loaded_call(call: Call) -> tuple[Occurrence, str] | None:
    """The same, for a call row read in a session that is still open."""
    session = object_session(call)
    return occurrence_of_call(session, call.id) if session is not None else None


def call_status(session: Session, call_id: str) -> str | None:
    return session.scalar(select(Call.status).where(Call.id == call_id))


def remove(session: Session, name: str) -> bool:
    result = session.execute(delete(Schedule).where(Schedule.name == name))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def names_from_source(session: Session, source: str) -> Collection[str]:
    return set(session.scalars(select(Schedule.name).where(Schedule.source == source)))
