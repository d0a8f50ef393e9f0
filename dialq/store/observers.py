"""Hear about committed rows without reading them back: HTTP attempts, for the metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from dialq.store.tables import Attempt
from dialq.store.webhook_tables import WebhookAttempt

# kind ("start" or "webhook"), HTTP status (None: no response), latency in milliseconds
AttemptObserver = Callable[[str, int | None, float], None]
_PENDING = "dialq.observed_attempts"
_observers: list[AttemptObserver] = []


def _collect(session: Session, _context: Any) -> None:
    pending = session.info.setdefault(_PENDING, [])
    for row in session.new:
        if isinstance(row, Attempt) and row.operation == "start":
            pending.append(("start", row.status_code, row.latency_ms))
        elif isinstance(row, WebhookAttempt):
            pending.append(("webhook", row.status_code, 0.0))


def note_inserted_attempts(session: Session, rows: Iterable[Mapping[str, Any]]) -> None:
    """Announce, once `session` commits, attempt rows (the attempts table's columns) written
    without the unit of work: a Core INSERT never reaches `after_flush`, where `_collect` would
    have seen them."""
    if _observers:
        session.info.setdefault(_PENDING, []).extend(
            ("start", row["status_code"], row["latency_ms"])
            for row in rows
            if row["operation"] == "start"
        )


def _announce(session: Session) -> None:
    for kind, status_code, latency_ms in session.info.pop(_PENDING, []):
        for observer in _observers:
            observer(kind, status_code, latency_ms)


def _forget(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)


def on_committed_attempts(observer: AttemptObserver) -> None:
    """Call `observer` for every start or webhook attempt this process commits (idempotent)."""
    if observer not in _observers:
        _observers.append(observer)
    if not event.contains(Session, "after_flush", _collect):
        event.listen(Session, "after_flush", _collect)
        event.listen(Session, "after_commit", _announce)
        event.listen(Session, "after_soft_rollback", _forget)


def stop_observing(observer: AttemptObserver) -> None:
    """Undo `on_committed_attempts` for this observer (the session hooks stay: they are cheap)."""
    if observer in _observers:
        _observers.remove(observer)
