"""Schedules in the store, on SQLite and PostgreSQL: upserts, ticks, occurrence keys.

The dispatcher runs against a real database and the real CallService; the broker is a
recording publisher and the clock is set by hand, so instants are exact.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from dialq.calls.read import call_detail
from dialq.schedules.occurrences import ScheduleDispatcher
from dialq.store import CallStatus, Conflict, calls_repo
from dialq.store import schedules_repo as repo
from dialq.store.schedule_tables import Outcome
from dialq.store.tables import Call
from dialq.validation.errors import InvalidCallRequest
from tests.schedule_helpers import (
    utc,
)
from tests.schedule_world import CALL, T0, World, schedule_world


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with schedule_world(database_url) as built:
        yield built


def every(seconds: int, name: str = "pulse", **extra: Any) -> dict[str, Any]:
    return {"name": name, "every": seconds, "call": CALL, **extra}


def test_an_upsert_by_the_same_name_updates_and_keeps_the_schedule(world: World) -> None:
    # given a schedule
    first = world.schedules.upsert(
        {"name": "standup", "cron": "0 9 * * 1-5", "timezone": "America/New_York", "call": CALL}
    )
    # when it is upserted again with another session name, then with another time
    same_time = world.schedules.upsert(
        {
            "name": "standup",
            "cron": "0 9 * * 1-5",
            "timezone": "America/New_York",
            "call": {**CALL, "session_name": "Daily"},
        }
    )
    new_time = world.schedules.upsert(
        {"name": "standup", "cron": "30 9 * * 1-5", "timezone": "America/New_York", "call": CALL}
    )
    # then it is one schedule, whose next occurrence follows its timing
    assert (first.created, same_time.created, new_time.created) == (True, False, False)
    assert first.id == same_time.id == new_time.id
    assert first.next_due_at == same_time.next_due_at == utc("2026-11-24T14:00:00Z")
    assert new_time.next_due_at == utc("2026-11-24T14:30:00Z")
    assert world.schedules.get("standup").template["session_name"] == "Standup"


@pytest.mark.parametrize(
    "bad",
    [
        {"cron": "not cron"},
        {"timezone": "Nowhere/Atlantis"},
        {"every": None, "cron": None, "at": "2020-01-01T00:00:00Z"},
        {"call": {"phone_number": "+1 555"}},
        {"call": {**CALL, "account": "sales"}},
        {"start": "2026-12-10", "end": "2026-12-01"},
    ],
)
def test_invalid_input_stores_nothing(world: World, bad: dict[str, Any]) -> None:
    data = {key: value for key, value in {**every(5), **bad}.items() if value is not None}
    with pytest.raises(InvalidCallRequest):
        world.schedules.upsert(data)
    with world.db.sessions() as session:
        assert repo.list_schedules(session) == []


def test_a_tick_places_each_occurrence_due_before_the_next_tick_with_its_instant(
    world: World,
) -> None:
    # given a schedule every 5 s (aligned), and a clock at 13:59:50
    world.schedules.upsert(every(5))
    # when ticks run at 13:59:52 and 13:59:54 (horizon: 3 s ahead)
    world.clock.now = utc("2026-11-24T13:59:52Z")
    world.dispatcher.tick()
    world.clock.now = utc("2026-11-24T13:59:54Z")
    world.dispatcher.tick()
    # then 13:59:55 was placed at the first tick, with a countdown to its instant, and once
    calls = world.calls()
    assert [c.not_before for c in calls] == [utc("2026-11-24T13:59:55Z")]
    assert world.publisher.sent == [(calls[0].id, 3.0)]
    assert calls[0].idempotency_key is not None
    assert calls[0].idempotency_key.endswith(":2026-11-24T13:59:55Z")
    assert world.occurrences() == [("2026-11-24T13:59:55+00:00", "placed")]


def test_a_repeated_tick_and_a_second_process_place_nothing_new(world: World) -> None:
    world.schedules.upsert(every(5))
    world.clock.now = utc("2026-11-24T13:59:58Z")
    world.dispatcher.tick()
    world.dispatcher.tick()
    world.another_process().tick()
    assert len(world.calls()) == 1
    assert len(world.occurrences()) == 1


def test_ticks_racing_in_eight_threads_place_one_call_per_occurrence(world: World) -> None:
    # given twenty per-second schedules, all due, and eight dispatchers of their own
    for index in range(20):
        world.schedules.upsert(every(1, name=f"s{index}", overlap="allow"))
    world.clock.now = utc("2026-11-24T13:59:51.5Z")
    dispatchers = [world.another_process() for _ in range(8)]
    barrier = threading.Barrier(len(dispatchers))
    errors: list[BaseException] = []

    def run(dispatcher: ScheduleDispatcher) -> None:
        barrier.wait()
        try:
            dispatcher.tick()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    # when they all tick at once
    threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then each occurrence (:51 to :54 for each schedule) has exactly one call
    assert errors == []
    keys = [c.idempotency_key for c in world.calls()]
    assert len(keys) == len(set(keys)) == 20 * 4
    assert len(world.occurrences()) == 20 * 4


def test_after_an_outage_late_occurrences_are_recorded_skipped_and_the_next_is_placed(
    world: World,
) -> None:
    # given a schedule every 10 s with a 15 s misfire grace, and no tick for a minute
    world.schedules.upsert(every(10, misfire_grace=15, overlap="allow"))
    world.clock.now = utc("2026-11-24T14:00:55Z")
    # when a tick finally runs
    world.dispatcher.tick()
    # then 14:00:00 to 14:00:30 are skipped as late; 14:00:40 and 14:00:50, within the grace,
    # are placed at once; 14:01:00 lies beyond this tick's horizon
    assert world.occurrences() == [
        ("2026-11-24T14:00:00+00:00", "skipped: late"),
        ("2026-11-24T14:00:10+00:00", "skipped: late"),
        ("2026-11-24T14:00:20+00:00", "skipped: late"),
        ("2026-11-24T14:00:30+00:00", "skipped: late"),
        ("2026-11-24T14:00:40+00:00", "placed"),
        ("2026-11-24T14:00:50+00:00", "placed"),
    ]
    assert [c.not_before for c in world.calls()] == [
        utc("2026-11-24T14:00:40Z"),
        utc("2026-11-24T14:00:50Z"),
    ]


def test_a_very_long_outage_writes_a_bounded_number_of_rows_then_jumps(world: World) -> None:
    world.schedules.upsert(every(1, misfire_grace=0, overlap="allow"))
    world.clock.now = T0 + timedelta(hours=2)
    world.dispatcher.tick()
    outcomes = [outcome for _, outcome in world.occurrences()]
    assert outcomes.count("skipped: late") == 100
    assert outcomes.count("placed") == 4  # the jump lands on now; then +1 s to +3 s ahead
    assert world.schedules.get("pulse").next_due_at == T0 + timedelta(hours=2, seconds=4)


def test_overlap_skip_skips_while_the_previous_call_is_live_and_places_once_it_ended(
    world: World,
) -> None:
    # given an every-5s schedule with overlap "skip" whose first call was placed
    world.schedules.upsert(every(5, overlap="skip", misfire_grace=60))
    world.clock.now = utc("2026-11-24T13:59:55Z")
    world.dispatcher.tick()
    first = world.calls()[0]
    # when the next occurrences come while that call is live (queued counts as live)
    world.clock.now = utc("2026-11-24T14:00:00Z")
    world.dispatcher.tick()
    # and then the first call ends
    with world.db.transaction() as session:
        # along the state machine's own edges: dialed, connected, ended
        path = [CallStatus.QUEUED, CallStatus.DIALING, CallStatus.CONNECTED, CallStatus.COMPLETED]
        for source, target in itertools.pairwise(path):
            calls_repo.transition(session, first.id, from_={source}, to=target, now=world.clock.now)
    world.clock.now = utc("2026-11-24T14:00:05Z")
    world.dispatcher.tick()
    # then the occurrence during the live call was skipped, the one after was placed
    assert world.occurrences() == [
        ("2026-11-24T13:59:55+00:00", "placed"),
        ("2026-11-24T14:00:00+00:00", "skipped: overlap"),
        ("2026-11-24T14:00:05+00:00", "placed"),
    ]


def test_a_paused_schedule_places_nothing_and_resumes_from_now(world: World) -> None:
    world.schedules.upsert(every(5))
    world.schedules.set_enabled("pulse", False)
    world.clock.now = utc("2026-11-24T14:10:00Z")
    world.dispatcher.tick()
    assert world.calls() == []
    resumed = world.schedules.set_enabled("pulse", True)
    assert resumed.next_due_at == utc("2026-11-24T14:10:05Z")  # nothing missed is replayed


def test_a_one_shot_fires_once_then_is_finished(world: World) -> None:
    world.schedules.upsert({"name": "once", "at": "2026-11-24T14:00:00Z", "call": CALL})
    for instant in ("13:59:58", "13:59:59", "14:00:01", "14:00:10"):
        world.clock.now = utc(f"2026-11-24T{instant}Z")
        world.dispatcher.tick()
    assert len(world.calls()) == 1
    assert world.schedules.get("once").next_due_at is None


def test_a_placed_call_names_its_schedule_and_occurrence(world: World) -> None:
    world.schedules.upsert(every(5))
    world.clock.now = utc("2026-11-24T13:59:54Z")
    world.dispatcher.tick()
    with world.db.sessions() as session:
        call = calls_repo.get_call(session, world.calls()[0].id)
        assert call is not None
        detail = call_detail(call)
    assert detail["schedule"]["name"] == "pulse"
    assert detail["schedule"]["occurrence_at"] == "2026-11-24T13:59:55+00:00"


def test_the_occurrence_key_is_unique_in_the_database(world: World) -> None:
    saved = world.schedules.upsert(every(5))
    with world.db.transaction() as session:
        repo.add_occurrence(session, saved.id, T0, Outcome.SKIPPED_LATE, now=T0)
    with pytest.raises(Conflict), world.db.transaction() as session:
        repo.add_occurrence(session, saved.id, T0, Outcome.PLACED, now=T0)


def test_a_tick_with_nothing_due_is_one_query_however_many_schedules(world: World) -> None:
    # given 300 schedules, none due in the next hour
    for index in range(300):
        world.schedules.upsert(
            {"name": f"daily-{index}", "cron": "0 3 * * *", "timezone": "UTC", "call": CALL}
        )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(world.db.engine, "before_cursor_execute", count)
    try:
        report = world.dispatcher.tick()
    finally:
        event.remove(world.db.engine, "before_cursor_execute", count)
    assert report.due == 0
    assert len(statements) == 1
    with world.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 0
