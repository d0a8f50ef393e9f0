"""What the CLI shows of schedules that have run: `dialq schedule show NAME` and `dialq show ID`.

The occurrences are made by the real dispatcher on a real (SQLite) database with a clock set by
hand, as in test_schedule_store.py; then the `dialq` command reads them in a process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.schedule_helpers import (
    utc,
)
from tests.schedule_world import CALL, World, schedule_world


@pytest.fixture
def scheduled(sqlite_url: str) -> Iterator[World]:
    """The schedules store and dispatcher, on the database the CLI will read."""
    with schedule_world(sqlite_url) as built:
        yield built


def dialq(sqlite_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
    env |= {"DIALQ_DATABASE_URL": sqlite_url, "DIALQ_DATA_DIR": str(tmp_path)}
    # The narrowest terminal people use: the tables must keep times and ids whole even here.
    env["COLUMNS"] = "80"
    return subprocess.run(
        [sys.executable, "-m", "dialq.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_schedule_show_lists_placed_late_and_overlap_occurrences_with_their_calls(
    scheduled: World, sqlite_url: str, tmp_path: Path
) -> None:
    # given an every-10s New York schedule that skips late (over 15 s) and overlapping occurrences
    scheduled.schedules.upsert(
        {
            "name": "pulse",
            "every": 10,
            "timezone": "America/New_York",
            "misfire_grace": 15,
            "overlap": "skip",
            "call": CALL,
        }
    )
    # and a first tick only at 14:00:42Z, after an outage
    scheduled.clock.now = utc("2026-11-24T14:00:42Z")
    scheduled.dispatcher.tick()
    (call_id,) = [call.id for call in scheduled.calls()]
    # when `dialq schedule show pulse` runs, as JSON and as text
    as_json = dialq(sqlite_url, tmp_path, "schedule", "show", "pulse", "--json")
    as_text = dialq(sqlite_url, tmp_path, "schedule", "show", "pulse")
    # then :00, :10 and :20 were too late, :30 was placed (its call still queued), and :40 was
    # skipped because that call was still live; newest first, in local time and in UTC
    assert as_json.returncode == 0, as_json.stderr
    occurrences = json.loads(as_json.stdout)["occurrences"]
    assert [(o["occurrence_at"], o["utc"], o["outcome"]) for o in occurrences] == [
        ("2026-11-24T09:00:40-05:00", "2026-11-24T14:00:40Z", "skipped: overlap"),
        ("2026-11-24T09:00:30-05:00", "2026-11-24T14:00:30Z", "placed"),
        ("2026-11-24T09:00:20-05:00", "2026-11-24T14:00:20Z", "skipped: late"),
        ("2026-11-24T09:00:10-05:00", "2026-11-24T14:00:10Z", "skipped: late"),
        ("2026-11-24T09:00:00-05:00", "2026-11-24T14:00:00Z", "skipped: late"),
    ]
    assert [(o["call_id"], o["call_status"]) for o in occurrences] == [
        (None, None),
        (call_id, "queued"),
        (None, None),
        (None, None),
        (None, None),
    ]
    # and the text table has one line per occurrence, with its outcome (and call) beside it,
    # whole in an 80-column terminal
    assert as_text.returncode == 0, as_text.stderr
    lines = as_text.stdout.splitlines()
    for occurrence in occurrences:
        (line,) = [line for line in lines if occurrence["occurrence_at"] in line]
        assert occurrence["outcome"] in line
        if occurrence["call_id"]:
            assert occurrence["call_id"][:8] in line  # the short id `dialq show` takes
            assert occurrence["call_status"] in line


def test_show_of_a_call_placed_by_a_schedule_prints_its_schedule_and_occurrence(
    scheduled: World, sqlite_url: str, tmp_path: Path
) -> None:
    # given an every-5s schedule whose 13:59:55Z occurrence a tick has placed
    scheduled.schedules.upsert({"name": "pulse", "every": 5, "call": CALL})
    scheduled.clock.now = utc("2026-11-24T13:59:54Z")
    scheduled.dispatcher.tick()
    (call_id,) = [call.id for call in scheduled.calls()]
    # when `dialq show` runs for that call
    result = dialq(sqlite_url, tmp_path, "show", call_id)
    # then it names the schedule and the occurrence that placed the call
    assert result.returncode == 0, result.stderr
    assert "  schedule: pulse, occurrence 2026-11-24T13:59:55+00:00" in result.stdout.splitlines()
