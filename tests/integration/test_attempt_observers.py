"""The metrics' counters hear of every start attempt a process commits, however the row is
written (a Core INSERT never passes the unit of work's flush), and of none it rolls back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from dialq.store import Call, Database, calls_repo, observers
from dialq.symbl.transport import AttemptRecord
from tests.call_rows import call_row

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
Heard = list[tuple[str, int | None, float]]


@pytest.fixture
def heard() -> Iterator[Heard]:
    seen: Heard = []

    def observer(kind: str, status_code: int | None, latency_ms: float) -> None:
        seen.append((kind, status_code, latency_ms))

    observers.on_committed_attempts(observer)
    yield seen
    observers.stop_observing(observer)


def _attempt(operation: str, status: int | None, latency_ms: float) -> AttemptRecord:
    return AttemptRecord(operation, T0, status, latency_ms, None)


def _a_call(db: Database) -> str:
    call_id = str(uuid.uuid4())
    with db.transaction() as session:
        session.execute(insert(Call), [call_row(call_id, T0)])
    return call_id


def test_committed_start_attempts_reach_the_observer_once_each_and_other_operations_not(
    db: Database, heard: Heard
) -> None:
    # given a call
    call_id = _a_call(db)
    # when a 429, a 201 and a stop are recorded in one committed transaction
    with db.transaction() as session:
        calls_repo.record_attempts(
            session,
            call_id,
            [
                _attempt("start", 429, 12.0),
                _attempt("start", 201, 30.0),
                _attempt("stop", 200, 5.0),
            ],
        )
        # then nothing is heard before the commit
        assert heard == []
    # and both starts are heard after it, in order, and the stop not at all
    assert heard == [("start", 429, 12.0), ("start", 201, 30.0)]


def test_start_attempts_of_a_rolled_back_transaction_are_never_heard(
    db: Database, heard: Heard
) -> None:
    # given a call
    call_id = _a_call(db)

    # when a start attempt is recorded in a transaction that fails
    def failing_step() -> None:
        with db.transaction() as session:
            calls_repo.record_attempts(session, call_id, [_attempt("start", 201, 30.0)])
            raise RuntimeError("the step failed after the insert")

    with pytest.raises(RuntimeError, match="failed after the insert"):
        failing_step()
    # and a later transaction commits another
    with db.transaction() as session:
        calls_repo.record_attempts(session, call_id, [_attempt("start", 503, 8.0)])
    # then only the committed one was heard
    assert heard == [("start", 503, 8.0)]
