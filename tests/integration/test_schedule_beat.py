"""Schedules end to end: real `celery beat` and worker processes, Redis, a database, the sandbox."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialq.schedules.api import upsert_schedule
from dialq.store import Database
from dialq.store import schedules_repo as repo
from tests.schedule_helpers import empty_tables, start_beat, stop
from tests.stack import Stack

CALL = {"phone_number": "+14155550123", "session_name": "Pulse"}
TICK_S = "0.5"


@pytest.fixture
def scheduled(stack: Stack) -> Iterator[Stack]:
    """The stack with empty schedule tables and a half-second dispatcher tick."""
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    empty_tables(db)
    stack.env["DIALQ_SCHEDULE_TICK_S"] = TICK_S
    yield stack
    empty_tables(db)
    db.dispose()


def occurrences(stack: Stack, name: str) -> list[dict[str, Any]]:
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.sessions() as session:
            schedule = repo.find(session, name)
            assert schedule is not None
            rows = repo.recent_occurrences(session, schedule.id, limit=1000)
            return [
                {"at": r.occurrence_at, "outcome": r.outcome, "call_id": r.call_id}
                for r in reversed(rows)
            ]
    finally:
        db.dispose()


def starts_by_call(stack: Stack) -> Counter[str]:
    return Counter(
        r["call_id"] for r in stack.sandbox.control.requests() if r.get("operation") == "start"
    )


def settle(stack: Stack, call_ids: list[str]) -> None:
    """Wait until every placed call got its answer (each is dialed once, then connected)."""
    for call_id in call_ids:
        stack.wait_for(call_id, {"connected", "failed", "unknown"}, timeout_s=20)


def run_for(seconds: float) -> None:
    time.sleep(seconds)


def test_a_schedule_every_two_seconds_places_one_call_per_occurrence_on_time(
    scheduled: Stack, tmp_path: Path
) -> None:
    # given a schedule declared in the schedules file, read by the worker at its first tick
    schedules_file = tmp_path / "schedules.toml"
    schedules_file.write_text(
        '[schedules.pulse]\nevery = "2s"\noverlap = "allow"\n'
        'call = { phone_number = "+14155550123", session_name = "Pulse" }\n'
    )
    scheduled.env["DIALQ_SCHEDULES_FILE"] = str(schedules_file)
    scheduled.start_worker()
    # when beat runs for about eight seconds
    beat = start_beat(scheduled, 0)
    run_for(8)
    stop(beat)
    # then every placed occurrence has its own call, started once, close to its instant
    placed = [o for o in occurrences(scheduled, "pulse") if o["outcome"] == "placed"]
    assert len(placed) >= 3
    call_ids = [o["call_id"] for o in placed]
    settle(scheduled, call_ids)
    starts = starts_by_call(scheduled)
    assert [starts[c] for c in call_ids] == [1] * len(call_ids)
    arrivals = {
        r["call_id"]: r["time"]
        for r in scheduled.sandbox.control.requests()
        if r.get("operation") == "start"
    }
    lateness = [arrivals[o["call_id"]] - o["at"].timestamp() for o in placed]
    assert all(-0.05 < late < 1.0 for late in lateness), lateness
    detail = scheduled.call(call_ids[0])
    assert detail["schedule"]["name"] == "pulse"


def test_two_beats_at_once_still_place_one_call_per_occurrence(scheduled: Stack) -> None:
    # given a per-second schedule and two workers
    upsert_schedule(
        {"name": "pulse", "every": 1, "overlap": "allow", "call": CALL},
        settings=scheduled.settings,
    )
    scheduled.start_worker(concurrency=4)
    scheduled.start_worker(concurrency=4)
    # when two beat processes tick the dispatcher at the same time for about six seconds
    beats = [start_beat(scheduled, 0), start_beat(scheduled, 1)]
    run_for(6)
    for beat in beats:
        stop(beat)
    # then each occurrence was placed once, and each call was started exactly once
    rows = occurrences(scheduled, "pulse")
    placed = [o for o in rows if o["outcome"] == "placed"]
    assert len(placed) >= 4
    assert len({o["at"] for o in rows}) == len(rows)
    call_ids = [o["call_id"] for o in placed]
    assert len(set(call_ids)) == len(call_ids)
    settle(scheduled, call_ids)
    starts = starts_by_call(scheduled)
    assert sum(starts.values()) == len(call_ids)
    assert all(starts[c] == 1 for c in call_ids)


def test_stopping_beat_then_restarting_skips_the_misfired_occurrences(scheduled: Stack) -> None:
    # given a per-second schedule with a two-second misfire grace, placing calls
    scheduled.start_worker()
    beat = start_beat(scheduled, 0)
    upsert_schedule(
        {"name": "pulse", "every": 1, "overlap": "allow", "misfire_grace": 2, "call": CALL},
        settings=scheduled.settings,
    )
    run_for(3)
    # when beat is stopped for six seconds and started again
    stop(beat)
    stopped_at = time.time()
    run_for(6)
    beat = start_beat(scheduled, 1)
    restarted_at = time.time()
    run_for(3)
    stop(beat)
    # then the occurrences more than two seconds late at the restart were skipped, not dialed
    rows = occurrences(scheduled, "pulse")
    late = [o for o in rows if o["outcome"] == "skipped: late"]
    assert len(late) >= 2
    assert all(o["call_id"] is None for o in late)
    assert all(stopped_at - 1.5 < o["at"].timestamp() < restarted_at for o in late)
    placed = [o for o in rows if o["outcome"] == "placed"]
    assert any(o["at"].timestamp() > restarted_at for o in placed)
    assert len({o["at"] for o in rows}) == len(rows)
    settle(scheduled, [o["call_id"] for o in placed])
    starts = starts_by_call(scheduled)
    assert sum(starts.values()) == len(placed)


def test_overlap_skip_skips_while_the_previous_call_is_live(scheduled: Stack) -> None:
    # given calls that last until stopped, and a schedule every two seconds with overlap skip
    upsert_schedule(
        {"name": "pulse", "every": 2, "overlap": "skip", "call": CALL},
        settings=scheduled.settings,
    )
    scheduled.start_worker()
    # when beat runs for about seven seconds
    beat = start_beat(scheduled, 0)
    run_for(7)
    stop(beat)
    # then the first occurrence was placed and those during its live call were skipped
    rows = occurrences(scheduled, "pulse")
    outcomes = [o["outcome"] for o in rows]
    assert outcomes[0] == "placed"
    assert outcomes[1:] == ["skipped: overlap"] * (len(outcomes) - 1)
    assert len(outcomes) >= 3
    settle(scheduled, [rows[0]["call_id"]])
    assert sum(starts_by_call(scheduled).values()) == 1
