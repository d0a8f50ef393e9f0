"""Queries for webhook delivery: the per-call cursor into events, its lease, its attempts."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, Subquery, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from dialq.store.tables import Call, Event
from dialq.store.webhook_tables import WebhookAttempt, WebhookCursor


def calls_with_callback(session: Session, call_ids: Collection[str]) -> list[str]:
    """Those of `call_ids` whose row names a callback_url (one query, however many ids)."""
    query = select(Call.id).where(Call.id.in_(list(call_ids)), Call.callback_url.is_not(None))
    return list(session.scalars(query))


def get_cursor(session: Session, call_id: str) -> WebhookCursor | None:
    return session.get(WebhookCursor, call_id)


def new_cursor(call_id: str, now: datetime) -> WebhookCursor:
    return WebhookCursor(call_id=call_id, delivered_seq=0, failures=0, updated_at=now)


def take_lease(
    session: Session, call_id: str, *, token: str, now: datetime, until: datetime
) -> bool:
    """Hold the call's delivery if nobody holds it, it is due, and it was not stopped.

    One conditional UPDATE: of two deliveries racing for the same call, exactly one wins.
    """
    result = session.execute(
        update(WebhookCursor)
        .where(
            WebhookCursor.call_id == call_id,
            WebhookCursor.gave_up_at.is_(None),
            or_(WebhookCursor.lease_until.is_(None), WebhookCursor.lease_until < now),
            or_(WebhookCursor.next_attempt_at.is_(None), WebhookCursor.next_attempt_at <= now),
        )
        .values(lease_token=token, lease_until=until, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def update_held(session: Session, call_id: str, token: str, **values: Any) -> bool:
    """Change the cursor only while `token` still holds it; False means the lease was lost."""
    result = session.execute(
        update(WebhookCursor)
        .where(WebhookCursor.call_id == call_id, WebhookCursor.lease_token == token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def next_event(session: Session, call_id: str, after_seq: int) -> Event | None:
    """The first event not yet delivered, in sequence order."""
    query = (
        select(Event)
        .where(Event.call_id == call_id, Event.seq > after_seq)
        .order_by(Event.seq)
        .limit(1)
    )
    return session.scalars(query).first()


def state_before(session: Session, call_id: str, seq: int) -> str | None:
    """The state the call was in before event ``seq``: the previous event's ``to_status``.

    Needed because a transition allowed from several states records ``from_status`` NULL.
    """
    query = select(Event.to_status).where(Event.call_id == call_id, Event.seq < seq)
    return session.scalars(query.order_by(Event.seq.desc()).limit(1)).first()


def record_attempt(session: Session, attempt: WebhookAttempt) -> None:
    session.add(attempt)


def attempts_of(session: Session, call_id: str) -> list[WebhookAttempt]:
    query = select(WebhookAttempt).where(WebhookAttempt.call_id == call_id)
    return list(session.scalars(query.order_by(WebhookAttempt.id)))


def due_for_delivery(
    session: Session,
    *,
    now: datetime,
    quiet_before: datetime,
    window_start: datetime,
    any_call: bool,
    limit: int,
) -> list[str]:
    """Calls with events past their cursor whose delivery is due and not held or stopped.

    A call with no retry scheduled counts only once its newest event is older than
    `quiet_before`: the nudge sent at commit time normally delivers it first. Calls whose
    newest event is older than `window_start` are past every retry window and ignored.
    `any_call` (a default callback is configured) also takes calls without a callback_url.

    Reads the events of the window off ix_events_at, then one cursor per call by its key:
    the cost follows the traffic of the window, never the number of calls or cursors kept.
    """
    latest = (
        select(
            Event.call_id.label("call_id"),
            func.max(Event.seq).label("last_seq"),
            func.max(Event.at).label("last_at"),
        )
        .where(Event.at >= window_start)
        .group_by(Event.call_id)
        .subquery()
    )
    # A call with no cursor yet is due once quiet.
    quiet = case((latest.c.last_at < quiet_before, 1), else_=0)
    query = (
        select(latest.c.call_id)
        .join(Call, Call.id == latest.c.call_id)
        .where(func.coalesce(_cursor_due(latest, now, quiet_before), quiet) == 1)
        .order_by(latest.c.last_at)
        .limit(limit)
    )
    if not any_call:
        query = query.where(Call.callback_url.is_not(None))
    return list(session.scalars(query))


def _cursor_due(latest: Subquery, now: datetime, quiet_before: datetime) -> ScalarSelect[int]:
    """1 when the call's cursor lets a delivery through, 0 when not, NULL without a cursor.

    A scalar subquery, so PostgreSQL probes the key once per call in the window: as a join
    it may hash every cursor ever written instead.
    """
    cursor = WebhookCursor
    due = and_(
        cursor.delivered_seq < latest.c.last_seq,
        cursor.gave_up_at.is_(None),
        or_(cursor.lease_until.is_(None), cursor.lease_until < now),
        or_(
            cursor.next_attempt_at <= now,
            and_(cursor.next_attempt_at.is_(None), latest.c.last_at < quiet_before),
        ),
    )
    found = select(case((due, 1), else_=0)).where(cursor.call_id == latest.c.call_id)
    return found.scalar_subquery()
