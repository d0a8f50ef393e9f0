"""A claim's and a connected call's event ride in their UPDATE's statement, numbered in that
statement's snapshot; an event another writer commits while the statement waits for the row
takes the number first. Then nothing is written, and the step is done again with the event
numbered after the other one (PostgreSQL: SQLite writes the event as a statement of its own).

Real PostgreSQL, Redis and sandbox; the other writer holds the row in a second session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from dialq.calls.dial import Dial
from dialq.calls.request import CallRequest
from dialq.calls.service import CallService
from dialq.capacity import Admission, Capacity
from dialq.clock import utcnow
from dialq.runtime import Runtime
from dialq.sandbox import RunningSandbox
from dialq.store import Database, Event
from dialq.store import calls_repo as repo
from dialq.symbl.client import AttemptRecord, StartResult
from tests.fixtures_sandbox import in_process_settings
from tests.schedule_helpers import RecordingPublisher

NOTE = "a note written while the start request was out"


def wait_for_a_lock_waiter(db: Database, timeout_s: float = 10.0) -> None:
    """Until some session of this database waits for a row lock (the dial's statement)."""
    deadline = time.monotonic() + timeout_s
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while time.monotonic() < deadline:
        with db.sessions() as session:
            if session.execute(query).scalar_one():
                return
        time.sleep(0.01)
    raise AssertionError("the dial's statement never waited for the row")


class Note:
    """Another writer: locks a call's row and adds an event, and commits it only once some
    statement waits for that row."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.writer: threading.Thread | None = None

    def __call__(self, call_id: str) -> None:
        locked = threading.Event()

        def write() -> None:
            with self.db.transaction() as session:
                repo.append_event(session, call_id, None, utcnow(), NOTE)
                locked.set()
                wait_for_a_lock_waiter(self.db)

        self.writer = threading.Thread(target=write)
        self.writer.start()
        assert locked.wait(10)

    def join(self) -> None:
        assert self.writer is not None, "the note was never written"
        self.writer.join(10)


class NoteWhileConnecting:
    """Wraps the real client: once the start answered, the note is written."""

    def __init__(self, runtime: Runtime, note: Note) -> None:
        self.runtime, self.note = runtime, note

    def __call__(self, account: str, on_attempt: Callable[[AttemptRecord], None]) -> Any:
        client = self.runtime.client_for(account, on_attempt)
        note = self.note

        class Client:
            def start(self, body: Any, *, call_id: str) -> StartResult:
                result = client.start(body, call_id=call_id)
                note(call_id)
                return result

        return Client()


class NoteWhileClaiming(Capacity):
    """The next permit taken is followed by the note: the claim's UPDATE comes next."""

    note: Note | None = None

    def acquire(self, account: str, call_id: str, **kwargs: Any) -> Admission:
        admission = super().acquire(account, call_id, **kwargs)
        note, self.note = self.note, None
        if note is not None:
            note(call_id)
        return admission


def events_of(db: Database, call_id: str) -> list[Event]:
    with db.sessions() as session:
        return list(session.query(Event).filter_by(call_id=call_id).order_by(Event.seq))


@dataclass
class World:
    runtime: Runtime
    note: Note


@pytest.fixture
def world(pg_url: str, redis_url: str, sandbox: RunningSandbox) -> Iterator[World]:
    """A runtime in this process on PostgreSQL, and another writer on a session of its own."""
    runtime = Runtime(in_process_settings(pg_url, redis_url, sandbox), RecordingPublisher())
    other = Database(pg_url)
    yield World(runtime, Note(other))
    other.dispose()
    runtime.close()


def test_an_event_committed_while_the_connected_update_waits_is_numbered_before_it(
    world: World,
) -> None:
    # given a queued call, and a client after whose start another writer holds the call's row
    runtime, note = world.runtime, world.note
    service = CallService(
        runtime.settings, runtime.db, NoteWhileConnecting(runtime, note), RecordingPublisher(),
        capacity=runtime.capacity,
    )  # fmt: skip
    call_id = service.enqueue(CallRequest(phone_number="+14155550142")).id
    # when the call is dialed, and the other writer's event is committed mid-record
    dial = Dial(service.ctx, call_id)
    status = dial.run()
    note.join()
    # then the call connected, its events numbered without a gap or a repeat, the note
    # before the connected event, which says it left dialing
    assert status == "connected"
    assert dial.event_in_statement is False  # the first try's number was taken
    events = events_of(runtime.db, call_id)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert [(e.from_status, e.to_status, e.detail) for e in events[-2:]] == [
        ("dialing", "dialing", NOTE),
        ("dialing", "connected", events[-1].detail),
    ]


def test_an_event_committed_while_the_claims_update_waits_is_numbered_before_it(
    world: World, sandbox: RunningSandbox
) -> None:
    # given a queued call, and a capacity after whose next permit another writer holds the row
    runtime = world.runtime
    capacity = NoteWhileClaiming(runtime.redis, runtime.capacity.limits)
    service = CallService(
        runtime.settings, runtime.db, runtime.client_for, RecordingPublisher(), capacity=capacity
    )
    call_id = service.enqueue(CallRequest(phone_number="+14155550143")).id
    capacity.note = world.note  # the enqueue took its place in line already
    # when the call is dialed, and the other writer's event is committed mid-claim
    dial = Dial(service.ctx, call_id)
    status = dial.run()
    world.note.join()
    # then the claim was taken again and the call connected once; its events are numbered
    # without a gap or a repeat, the note before the claim's, which says it left queued
    assert status == "connected"
    assert dial.claim.event_in_statement is False  # the first try's number was taken
    events = events_of(runtime.db, call_id)
    assert [(e.seq, e.from_status, e.to_status) for e in events] == [
        (1, None, "queued"),
        (2, "queued", "queued"),
        (3, "queued", "dialing"),
        (4, "dialing", "connected"),
    ]
    assert events[1].detail == NOTE
    starts = [
        entry
        for entry in sandbox.control.requests()
        if entry.get("operation") == "start" and entry.get("call_id") == call_id
    ]
    assert len(starts) == 1
