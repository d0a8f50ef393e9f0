"""The store on SQLite and PostgreSQL: conditional transitions, event sequence, dispatch queries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dialq.calls.states import IllegalTransition
from dialq.store import Call, CallStatus, Conflict, Database
from dialq.store import calls_repo as repo
from dialq.store.tables import Attempt, Event
from dialq.symbl.transport import AttemptRecord
from tests.call_rows import call_row

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def new_call(call_id: str, **overrides: object) -> Call:
    return Call(**call_row(call_id, T0, **overrides))


def test_upgrade_twice_is_harmless(db: Database) -> None:
    db.upgrade()
    with db.sessions() as session:
        assert repo.list_calls(session) == []


def test_a_transition_from_the_wrong_state_changes_nothing(db: Database) -> None:
    # given a call that is already dialing
    with db.transaction() as session:
        repo.add_call(session, new_call("c1"))
    with db.transaction() as session:
        assert repo.transition(
            session, "c1", from_={CallStatus.QUEUED}, to=CallStatus.DIALING, now=T0
        )
    # when a second claim tries the same move
    with db.transaction() as session:
        moved = repo.transition(
            session, "c1", from_={CallStatus.QUEUED}, to=CallStatus.DIALING, now=T0
        )
    # then it is refused, and the timeline has one claim
    assert moved is False
    with db.sessions() as session:
        call = repo.get_call(session, "c1")
        assert call is not None
        assert [(e.seq, e.to_status) for e in call.events] == [(1, "queued"), (2, "dialing")]


def test_a_call_written_waiting_gets_both_first_events_and_the_column_defaults(
    db: Database,
) -> None:
    # given a new call that found no free permit, with the defaulted columns left unset
    row = call_row("w1", T0, status=CallStatus.WAITING.value)
    for defaulted in ("priority", "start_attempts", "failures", "capacity_waits"):
        del row[defaulted]
    # when its row is written (one statement on PostgreSQL, two on SQLite)
    with db.transaction() as session:
        repo.add_call(session, Call(**row), waited="no free permit")
    # then it was queued, then waiting, from its creation, with every default filled in
    with db.sessions() as session:
        call = repo.get_call(session, "w1")
        assert call is not None
        assert [(e.seq, e.from_status, e.to_status, e.detail, e.at) for e in call.events] == [
            (1, None, "queued", None, T0),
            (2, "queued", "waiting", "no free permit", T0),
        ]
        assert (call.priority, call.start_attempts, call.failures, call.capacity_waits) == (
            5, 0, 0, 0,
        )  # fmt: skip


def test_attempts_given_to_a_transition_are_recorded_whether_or_not_it_moves(
    db: Database,
) -> None:
    # given a dialing call, and the start request's two HTTP attempts (a 503, then a 201)
    with db.transaction() as session:
        repo.add_call(session, new_call("a1", status=CallStatus.DIALING.value))
    tried = [
        AttemptRecord("start", T0, 503, 12.5, "service unavailable"),
        AttemptRecord("start", T0 + timedelta(seconds=1), 201, 80.0, None),
    ]
    # when it moves to connected with them, and a stale second delivery tries the same
    with db.transaction() as session:
        moved = repo.transition_returning(
            session, "a1", from_={CallStatus.DIALING}, to=CallStatus.CONNECTED, now=T0,
            values={"conversation_id": "conv-1"}, returning=[Call.conversation_id],
            attempts=tried,
        )  # fmt: skip
    with db.transaction() as session:
        stale = repo.transition_returning(
            session, "a1", from_={CallStatus.DIALING}, to=CallStatus.CONNECTED, now=T0,
            attempts=[AttemptRecord("start", T0, 429, 5.0, "too many")],
        )  # fmt: skip
    # then the first moved and returned its columns, the second did not move, and all three
    # attempts are on record (a request made is a request recorded)
    assert moved is not None
    assert moved.conversation_id == "conv-1"
    assert stale is None
    with db.sessions() as session:
        rows = session.scalars(select(Attempt).where(Attempt.call_id == "a1").order_by(Attempt.id))
        assert [(a.status_code, a.latency_ms, a.error) for a in rows] == [
            (503, 12.5, "service unavailable"),
            (201, 80.0, None),
            (429, 5.0, "too many"),
        ]


@pytest.mark.parametrize("event_in_statement", [False, True])
def test_a_transition_numbers_its_event_next_and_from_the_state_it_left(
    db: Database, event_in_statement: bool
) -> None:
    # given a dialing call with its first event, moved on to unknown (two events)
    with db.transaction() as session:
        repo.add_call(session, new_call("e1", status=CallStatus.DIALING.value))
        repo.move(session, "e1", {CallStatus.DIALING}, CallStatus.UNKNOWN, T0, "lost")
    # when it resolves to connected from either state it may leave, with its event written
    # in the UPDATE's statement or after it, and a second try of the same finds it moved
    tries = []
    for _ in range(2):
        with db.transaction() as session:
            tries.append(
                repo.transition_returning(
                    session, "e1", from_={CallStatus.DIALING, CallStatus.UNKNOWN},
                    to=CallStatus.CONNECTED, now=T0, detail="resolved",
                    returning=[Call.status], event_in_statement=event_in_statement,
                )
            )  # fmt: skip
    first, second = tries
    assert first is not None
    assert first.status == CallStatus.CONNECTED.value
    assert second is None
    # then one event more, numbered third, from unknown
    with db.sessions() as session:
        events = session.scalars(select(Event).where(Event.call_id == "e1").order_by(Event.seq))
        assert [(e.seq, e.from_status, e.to_status) for e in events] == [
            (1, None, "dialing"),
            (2, "dialing", "unknown"),
            (3, "unknown", "connected"),
        ]


def test_concurrent_claims_of_one_call_let_exactly_one_win(db: Database) -> None:
    with db.transaction() as session:
        repo.add_call(session, new_call("c2"))
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        with db.transaction() as session:
            wins.append(
                repo.transition(
                    session, "c2", from_={CallStatus.QUEUED}, to=CallStatus.DIALING, now=T0
                )
            )

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_times_come_back_as_aware_utc(db: Database) -> None:
    local = datetime(2026, 11, 24, 4, 0, tzinfo=UTC).astimezone()
    with db.transaction() as session:
        repo.add_call(session, new_call("c3", not_before=local))
    with db.sessions() as session:
        call = repo.get_call(session, "c3")
        assert call is not None
        assert call.not_before == local
        assert call.not_before.tzinfo is not None


def test_an_idempotency_key_is_unique(db: Database) -> None:
    with db.transaction() as session:
        repo.add_call(session, new_call("c4", idempotency_key="k"))
    with pytest.raises(Conflict), db.transaction() as session:
        repo.add_call(session, new_call("c5", idempotency_key="k"))
    with db.sessions() as session:
        found = repo.find_by_idempotency_key(session, "k")
        assert found is not None
        assert found.id == "c4"


def test_due_for_dispatch_finds_due_calls_without_a_live_message_in_priority_order(
    db: Database,
) -> None:
    with db.transaction() as session:
        repo.add_call(session, new_call("never-published"))
        repo.add_call(session, new_call("urgent", priority=9))
        repo.add_call(session, new_call("fresh-message", dispatch_due_at=T0 + timedelta(seconds=5)))
        repo.add_call(session, new_call("far-future", not_before=T0 + timedelta(hours=2)))
        repo.add_call(session, new_call("done", status=CallStatus.CONNECTED.value))
    with db.sessions() as session:
        due = repo.due_for_dispatch(session, now=T0, horizon=T0 + timedelta(seconds=10))
    assert [call_id for call_id, _ in due] == ["urgent", "never-published"]


def test_change_listeners_hear_committed_transitions_and_not_rolled_back_ones(db: Database) -> None:
    heard: list[set[str]] = []
    db.on_change(heard.append)
    # given a committed insert and transition
    with db.transaction() as session:
        repo.add_call(session, new_call("c6"))
    with db.transaction() as session:
        repo.transition(session, "c6", from_={CallStatus.QUEUED}, to=CallStatus.DIALING, now=T0)

    # when a transition is rolled back, and a claim that finds nothing happens
    def fail_midway() -> None:
        with db.transaction() as session:
            repo.transition(session, "c6", from_={CallStatus.DIALING}, to=CallStatus.FAILED, now=T0)
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        fail_midway()
    with db.transaction() as session:
        repo.transition(session, "c6", from_={CallStatus.QUEUED}, to=CallStatus.DIALING, now=T0)
    # then only the two committed changes were announced
    assert heard == [{"c6"}, {"c6"}]


def test_a_call_is_found_by_its_whole_id_or_a_unique_prefix_and_never_by_a_shared_one(
    db: Database,
) -> None:
    # given two calls whose ids share their first eight characters
    first, second = "0c6f1f0e-8a57-4c1b-9c3b-2a8d7f1e2b3c", "0c6f1f0e-1111-4c1b-9c3b-2a8d7f1e2b3d"
    with db.transaction() as session:
        repo.add_call(session, new_call(first))
        repo.add_call(session, new_call(second))
    with db.sessions() as session:
        # when each is named by its whole id, or by enough of its start (any case)
        assert getattr(repo.find_call(session, first), "id", None) == first
        assert getattr(repo.find_call(session, "0C6F1F0E-8A"), "id", None) == first
        assert getattr(repo.find_call(session, "0c6f1f0e-1"), "id", None) == second
        # then a prefix both share is refused as ambiguous, not guessed
        with pytest.raises(repo.AmbiguousCallId):
            repo.find_call(session, "0c6f1f0e")
        # and what is too short, not an id's characters, or a LIKE pattern names no call
        for given in ("0c6", "0c6f1f0e%", "%", "_c6f1f0e", "zzzzzzzz"):
            assert repo.find_call(session, given) is None


def test_a_move_the_state_machine_does_not_allow_is_refused_and_writes_nothing(
    db: Database,
) -> None:
    # given a completed call
    with db.transaction() as session:
        repo.add_call(session, new_call("c9", status=CallStatus.COMPLETED.value))
    # when code asks to move it back to queued
    with pytest.raises(IllegalTransition), db.transaction() as session:
        repo.transition(session, "c9", from_={CallStatus.COMPLETED}, to=CallStatus.QUEUED, now=T0)
    # then the row and its events are as they were
    with db.sessions() as session:
        call = repo.get_call(session, "c9")
        assert call is not None
        assert call.status == CallStatus.COMPLETED.value
        events = session.scalars(select(Event.to_status).where(Event.call_id == "c9")).all()
        assert events == ["completed"]
