"""Queries on insights: a harvest holds a row through one conditional UPDATE (a lease)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dialq.store.insights_tables import PART_COLUMNS, Insights, InsightsStatus
from dialq.store.tables import Call, CallStatus

# Calls whose insights are worth harvesting: they ended, and they had a conversation.
ENDED = (CallStatus.COMPLETED.value, CallStatus.CANCELED.value)
# The parts counted in a summary, in the order people read them.
COUNTED = ("messages", "topics", "questions", "action_items", "follow_ups", "members", "summary")


def get(session: Session, call_id: str) -> Insights | None:
    return session.get(Insights, call_id)


def claim(
    session: Session, row: Insights, *, due_by: datetime, now: datetime, lease_until: datetime
) -> int | None:
    """Hold a pending row that is due by `due_by` for one harvest; its fencing token, or None.

    The UPDATE matches only the attempt count that was read: of two deliveries that read the
    same row, exactly one wins, and the other does nothing.
    """
    token = row.attempts + 1
    result = session.execute(
        update(Insights)
        .where(
            Insights.call_id == row.call_id,
            Insights.status == InsightsStatus.PENDING.value,
            Insights.attempts == row.attempts,
            or_(Insights.next_attempt_at.is_(None), Insights.next_attempt_at <= due_by),
        )
        .values(
            attempts=token,
            next_attempt_at=lease_until,
            first_tried_at=row.first_tried_at or now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return token if result.rowcount == 1 else None  # type: ignore[attr-defined]


def save(
    session: Session,
    call_id: str,
    token: int,
    *,
    parts: Mapping[str, Any],
    now: datetime,
    status: InsightsStatus,
    reason: str | None,
    next_attempt_at: datetime | None,
) -> bool:
    """Store a harvest's parts and outcome, if the row is still held by `token`."""
    values: dict[str, Any] = {PART_COLUMNS[part]: value for part, value in parts.items()}
    values.update(
        status=status.value,
        reason=reason,
        next_attempt_at=next_attempt_at,
        updated_at=now,
    )
    if status is InsightsStatus.READY:
        values["harvested_at"] = now
    result = session.execute(
        update(Insights)
        .where(
            Insights.call_id == call_id,
            Insights.status == InsightsStatus.PENDING.value,
            Insights.attempts == token,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def ended_without_insights(
    session: Session, *, ended_after: datetime, ended_before: datetime, limit: int
) -> list[str]:
    """Ended calls with a conversation and no insights row, that ended in [after, before).

    Since migration 0007 a call's pending row is written with its end, so only a call ended by
    an older worker can lack one: the sweep reads back as far as the insights deadline, through
    ix_calls_ended, so the cost is the calls ended in that window, never all of history.
    """
    query = (
        select(Call.id)
        .where(
            # Spelled as ix_calls_ended's predicate: a partial index serves only a query
            # that implies it.
            Call.conversation_id.is_not(None),
            Call.ended_at >= ended_after,
            Call.ended_at < ended_before,
            Call.status.in_(ENDED),
            ~exists().where(Insights.call_id == Call.id),
        )
        .order_by(Call.ended_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def add_pending(session: Session, call_id: str, *, now: datetime) -> bool:
    """A pending row due now, unless the call has one already; True when this wrote it.

    Written with the call's end, by the harvest of a call ended before that was so, and by the
    sweep: whichever comes second finds the row there and changes nothing (no error, so the
    transaction around it goes on).
    """
    values = {
        "call_id": call_id,
        "status": InsightsStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "updated_at": now,
    }
    # SQLAlchemy reads an INSERT's rowcount only when asked (PostgreSQL would say -1).
    statement = _insert_unless_present(session, values).execution_options(preserve_rowcount=True)
    result = session.execute(statement)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _insert_unless_present(session: Session, values: Mapping[str, Any]) -> Executable:
    """INSERT ... ON CONFLICT (call_id) DO NOTHING, in the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(Insights).values(**values).on_conflict_do_nothing()
    return sqlite.insert(Insights).values(**values).on_conflict_do_nothing()


def overdue(session: Session, *, due_before: datetime, limit: int) -> list[Insights]:
    """Pending rows whose next harvest (or whose holder's lease) was due before `due_before`."""
    query = (
        select(Insights)
        .where(
            Insights.status == InsightsStatus.PENDING.value,
            Insights.next_attempt_at < due_before,
        )
        .order_by(Insights.next_attempt_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def mark_republished(session: Session, row: Insights, *, now: datetime) -> bool:
    """Make an overdue row due now, unless a harvest changed it since it was read."""
    result = session.execute(
        update(Insights)
        .where(
            Insights.call_id == row.call_id,
            Insights.status == InsightsStatus.PENDING.value,
            Insights.attempts == row.attempts,
            Insights.next_attempt_at == row.next_attempt_at,
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def insights_view(row: Insights) -> dict[str, Any]:
    """The row as plain data: the `insights` object of `dialq show --json`."""
    view: dict[str, Any] = {"status": row.status, "reason": row.reason}
    for column in PART_COLUMNS.values():
        view[column] = getattr(row, column)
    view.update(
        attempts=row.attempts,
        first_tried_at=_iso(row.first_tried_at),
        next_attempt_at=_iso(row.next_attempt_at),
        harvested_at=_iso(row.harvested_at),
        updated_at=_iso(row.updated_at),
    )
    return view


def load_insights(session: Session, call_id: str) -> dict[str, Any] | None:
    """The call's insights as plain data, or None when no harvest has started."""
    row = get(session, call_id)
    return None if row is None else insights_view(row)


def summarize(view: Mapping[str, Any]) -> dict[str, Any]:
    """Counts per kind, the summary texts, the action items' texts: small enough for a webhook."""
    return {
        "status": view.get("status"),
        "reason": view.get("reason"),
        "counts": {kind: len(view.get(kind) or []) for kind in COUNTED},
        "summary": _texts(view.get("summary")),
        "action_items": _texts(view.get("action_items")),
    }


def _texts(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [str(i["text"]) for i in items if isinstance(i, dict) and i.get("text")]


def insights_summary(session: Session, call_id: str) -> dict[str, Any] | None:
    """`summarize` of the call's insights, or None when no harvest has started."""
    view = load_insights(session, call_id)
    return None if view is None else summarize(view)
