"""A look at a live call is claimed and read in one statement (`calls_repo.take_look`), on
SQLite and PostgreSQL: one message of several gets the look, a waiting cancel is always
honoured while connected, and a call that is not live gives nobody a look."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert

from dialq.store import Call, CallStatus, Database, calls_repo
from tests.call_rows import call_row
from tests.databases import empty_database

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=5)


def live_call(status: CallStatus, **overrides: Any) -> dict[str, Any]:
    live = {
        "status": status.value,
        "start_attempts": 1,
        "connected_at": T0,
        "conversation_id": "conv-1",
        "watch_due_at": T0 + INTERVAL,
    }
    return call_row(str(uuid.uuid4()), T0, **{**live, **overrides})


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    # (concurrent writers: SQLite has one writer at a time)
    database = empty_database(pg_url)
    yield database
    database.dispose()


def add(db: Database, row: dict[str, Any]) -> str:
    with db.transaction() as session:
        session.execute(insert(Call).values(row))
    return str(row["id"])


def take(db: Database, call_id: str, now: datetime) -> Call | None:
    with db.transaction() as session:
        return calls_repo.take_look(
            session, call_id, due_by=now + INTERVAL / 2, next_due=now + INTERVAL
        )


def test_a_due_look_is_taken_and_read_in_one_statement_and_a_second_message_gets_none(
    db: Database,
) -> None:
    # given a connected call whose look is due at T0 + 5 s
    call_id = add(db, live_call(CallStatus.CONNECTED))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    # when its message arrives at the due time
    now = T0 + INTERVAL
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        taken = take(db, call_id, now)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    # then one statement took the look and read the call, the next look is an interval ahead
    assert taken is not None
    assert (taken.id, taken.conversation_id) == (call_id, "conv-1")
    assert taken.watch_due_at == now + INTERVAL
    assert len(statements) == 1
    assert statements[0].lstrip().upper().startswith("UPDATE")
    # and a duplicate message for the same look gets nothing
    assert take(db, call_id, now) is None


def test_a_duplicate_in_the_last_half_interval_takes_the_look_over_an_earlier_one_does_not(
    db: Database,
) -> None:
    # given a connected call whose look is due at T0 + 5 s
    call_id = add(db, live_call(CallStatus.CONNECTED))
    # when a message arrives 3 s early, then it gets nothing; 2 s early, it takes the look
    assert take(db, call_id, T0 + INTERVAL - timedelta(seconds=3)) is None
    assert take(db, call_id, T0 + INTERVAL - timedelta(seconds=2)) is not None


def test_a_waiting_cancel_gets_a_look_while_connected_but_not_while_stopping(
    db: Database,
) -> None:
    # given a connected and a stopping call, both with a cancel waiting, looks not yet due
    connected = add(db, live_call(CallStatus.CONNECTED, cancel_requested_at=T0))
    stopping = add(db, live_call(CallStatus.STOPPING, cancel_requested_at=T0))
    # when their messages arrive at once, then the connected one is looked at (to stop it),
    # and the stopping one's stop, already claimed, is not retried before its look is due
    assert take(db, connected, T0) is not None
    assert take(db, stopping, T0) is None


@pytest.mark.parametrize("status", [CallStatus.COMPLETED, CallStatus.QUEUED, CallStatus.UNKNOWN])
def test_a_call_that_is_not_live_gives_no_look(db: Database, status: CallStatus) -> None:
    # given a call that is not live, its look long overdue
    call_id = add(db, live_call(status, watch_due_at=None))
    # when a watch message for it arrives, then no look is taken
    assert take(db, call_id, T0 + timedelta(hours=1)) is None


def take_page(db: Database, now: datetime, limit: int) -> list[str]:
    with db.transaction() as session:
        return [
            c.id
            for c in calls_repo.take_due_looks(
                session, due_by=now + INTERVAL / 2, next_due=now + INTERVAL, limit=limit
            )
        ]


def test_a_page_takes_the_earliest_due_connected_looks_and_nothing_else(db: Database) -> None:
    # given four connected calls due at T0+1..4 s, one due later, one stopping and one
    # finished call overdue, and one connected call that has no look planned
    due = [
        add(db, live_call(CallStatus.CONNECTED, watch_due_at=T0 + timedelta(seconds=s)))
        for s in (4, 1, 3, 2)
    ]
    add(db, live_call(CallStatus.CONNECTED, watch_due_at=T0 + timedelta(seconds=30)))
    add(db, live_call(CallStatus.STOPPING, watch_due_at=T0))
    add(db, live_call(CallStatus.COMPLETED, watch_due_at=T0))
    add(db, live_call(CallStatus.CONNECTED, watch_due_at=None))
    # when a page of three is taken at T0+2 s (looks due by T0+4.5 s count)
    now = T0 + timedelta(seconds=2)
    first = take_page(db, now, 3)
    # then the three earliest due connected calls, earliest first, and the next page gets
    # the fourth, then nothing: each look is taken once, and its next one is an interval on
    assert sorted(first) == sorted([due[1], due[3], due[2]])
    assert take_page(db, now, 3) == [due[0]]
    assert take_page(db, now, 3) == []
    with db.sessions() as session:
        for call_id in due:
            call = calls_repo.get_call(session, call_id)
            assert call is not None
            assert call.watch_due_at == now + INTERVAL


def test_two_pages_taken_at_once_never_share_a_call_and_neither_waits(pg: Database) -> None:
    db = pg
    # given six connected calls whose looks are due
    for _ in range(6):
        add(db, live_call(CallStatus.CONNECTED, watch_due_at=T0))
    now = T0 + INTERVAL
    # when one transaction holds a page of four uncommitted and a second takes a page
    with db.transaction() as first_session:
        first = calls_repo.take_due_looks(
            first_session, due_by=now, next_due=now + INTERVAL, limit=4
        )
        second = take_page(db, now, 4)  # returns at once: the first page's rows are skipped
        # then the second page holds the two calls the first did not take
        assert len(first) == 4
        assert len(second) == 2
        assert not {c.id for c in first} & set(second)
