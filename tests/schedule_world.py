"""The schedules store and dispatcher on a real database, with a clock tests move by hand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from dialq.calls.service import CallService
from dialq.config import Settings
from dialq.schedules.api import ScheduleService
from dialq.schedules.occurrences import ScheduleDispatcher
from dialq.store import Database, calls_repo
from dialq.store.schedule_tables import Occurrence
from dialq.store.tables import Call
from tests.schedule_helpers import (
    Clock,
    RecordingPublisher,
    empty_tables,
    no_dialing,
    unused_capacity,
    utc,
)

T0 = utc("2026-11-24T13:59:50Z")  # ten seconds before 09:00 in New York
CALL = {"phone_number": "+14155550123", "session_name": "Standup"}


def _not_before(call: Call) -> datetime:
    """Every call a schedule places is enqueued with its planned instant as `not_before`."""
    assert call.not_before is not None, call.id
    return call.not_before


@dataclass
class World:
    settings: Settings
    db: Database
    clock: Clock
    publisher: RecordingPublisher
    schedules: ScheduleService
    dispatcher: ScheduleDispatcher
    others: list[Database] = field(default_factory=list)

    def another_process(self) -> ScheduleDispatcher:
        """A dispatcher with its own engine and publisher, as a second beat/worker would have."""
        db = Database(self.db.url)
        self.others.append(db)
        return _dispatcher(self.settings, db, self.publisher, self.clock)

    def calls(self) -> list[Call]:
        with self.db.sessions() as session:
            return sorted(calls_repo.list_calls(session, limit=10_000), key=_not_before)

    def occurrences(self) -> list[tuple[str, str]]:
        with self.db.sessions() as session:
            rows = session.scalars(select(Occurrence).order_by(Occurrence.occurrence_at))
            return [(r.occurrence_at.isoformat(), r.outcome) for r in rows]


def _dispatcher(
    settings: Settings, db: Database, publisher: RecordingPublisher, clock: Clock
) -> ScheduleDispatcher:
    calls = CallService(
        settings, db, no_dialing, publisher, capacity=unused_capacity(), clock=clock
    )
    return ScheduleDispatcher(settings, db, calls.enqueue, clock=clock)


@contextmanager
def schedule_world(database_url: str) -> Iterator[World]:
    """Empty tables at T0, a 1 s tick; every engine disposed afterwards."""
    settings = Settings(database_url=database_url, schedule_tick_s=1.0)
    db = Database(database_url)
    db.upgrade()
    empty_tables(db)
    clock = Clock(T0)
    publisher = RecordingPublisher()
    world = World(
        settings,
        db,
        clock,
        publisher,
        ScheduleService(settings, db, clock=clock),
        _dispatcher(settings, db, publisher, clock),
    )
    try:
        yield world
    finally:
        for database in [db, *world.others]:
            database.dispose()
