"""Schedules from a TOML file and from the `dialq schedule` command, stored in a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialq.config import Settings
from dialq.schedules.api import ScheduleService
from dialq.schedules.file import FileWatcher, sync_file
from dialq.schedules.spec import InvalidSchedule
from dialq.store import Database
from dialq.store import schedules_repo as repo
from tests.schedule_helpers import empty_tables

FILE = """
[schedules.standup]
cron = "0 9 * * 1-5"
timezone = "America/New_York"
call = { phone_number = "+14155550123", session_name = "Standup" }

[schedules.board]
cron = "0 10 * * 1#1"
timezone = "Europe/London"
end = 2027-12-31
call = { sip_uri = "sip:board@sip.example.com" }
"""


@pytest.fixture
def service(database_url: str) -> Iterator[ScheduleService]:
    db = Database(database_url)
    db.upgrade()
    empty_tables(db)
    yield ScheduleService(Settings(database_url=database_url), db)
    db.dispose()


def stored(service: ScheduleService) -> dict[str, str]:
    with service.db.sessions() as session:
        return {s.name: s.source for s in repo.list_schedules(session)}


def test_a_file_upserts_its_schedules_and_later_removes_the_ones_it_dropped(
    service: ScheduleService, tmp_path: Path
) -> None:
    # given a CLI schedule and a file declaring two schedules
    service.upsert({"name": "manual", "every": "1h", "call": {"phone_number": "+14155550100"}})
    path = tmp_path / "schedules.toml"
    path.write_text(FILE)
    # when the file is applied, then applied again without "board"
    sync_file(path, service)
    assert stored(service) == {"board": "file", "manual": "api", "standup": "file"}
    path.write_text(FILE.split("[schedules.board]")[0])
    sync_file(path, service)
    # then the file's schedules follow the file, and the CLI's schedule is untouched
    assert stored(service) == {"manual": "api", "standup": "file"}


def test_an_invalid_file_changes_nothing_and_names_schedule_and_field(
    service: ScheduleService, tmp_path: Path
) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(FILE.replace('"Europe/London"', '"Europe/Atlantis"'))
    with pytest.raises(InvalidSchedule, match=r"schedules\.board\.timezone"):
        sync_file(path, service)
    assert stored(service) == {}


def test_the_watcher_applies_the_file_once_per_change(
    service: ScheduleService, tmp_path: Path
) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(FILE)
    watcher = FileWatcher(service, path)
    watcher.sync_if_changed()
    service.remove("standup")  # a change the watcher must not undo until the file changes
    watcher.sync_if_changed()
    assert stored(service) == {"board": "file"}
    path.write_text(FILE + "\n# touched\n")
    watcher.sync_if_changed()
    assert stored(service) == {"board": "file", "standup": "file"}


# -- the CLI ------------------------------------------------------------------------------------


def dialq(sqlite_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
    env |= {"DIALQ_DATABASE_URL": sqlite_url, "DIALQ_DATA_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "dialq.cli", "schedule", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["+14155550123", "--cron", "0 9 * *"], "cron"),
        (["+14155550123", "--cron", "0 9 * * *", "--tz", "America/Gotham"], "timezone"),
        (["+14155550123", "--every", "1h", "--start", "2027-02-01", "--end", "2027-01-01"], "end"),
        (["+44 20 7946 0958", "--every", "1h"], "call.phone_number"),
        (["+14155550123", "--every", "1h", "--max-duration", "ages"], "call.max_duration_s"),
        (["+14155550123"], "cron"),
    ],
)
def test_cli_invalid_input_exits_2_naming_the_field_and_stores_nothing(
    sqlite_url: str, tmp_path: Path, flags: list[str], field: str
) -> None:
    result = dialq(sqlite_url, tmp_path, "add", "standup", *flags)
    assert result.returncode == 2, result.stderr
    assert f"{field}:" in result.stderr
    listed = dialq(sqlite_url, tmp_path, "list", "--json")
    assert json.loads(listed.stdout) == []


def test_cli_add_then_next_prints_local_and_utc_across_the_spring_change(
    sqlite_url: str, tmp_path: Path
) -> None:
    # given a weekday standup at 09:00 New York time
    added = dialq(
        sqlite_url,
        tmp_path,
        "add", "standup", "+14155550123", "--cron", "0 9 * * 1-5",
        "--tz", "America/New_York", "--name", "Standup", "--email", "lead@example.com",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    # when its next three occurrences after Thursday 2027-03-11 are asked for (New York springs
    # forward on Sunday 2027-03-14), as JSON and as a table
    next_three = ["next", "standup", "--count", "3", "--after", "2027-03-11T10:00"]
    as_json = dialq(sqlite_url, tmp_path, *next_three, "--json")
    as_text = dialq(sqlite_url, tmp_path, *next_three)
    # then all read 09:00 locally, while the offset goes from -05:00 (EST) on Friday to -04:00
    # (EDT) on Monday, so the UTC time moves from 14:00 to 13:00
    assert as_json.returncode == 0, as_json.stderr
    expected = [
        {"local": "2027-03-12T09:00:00-05:00", "utc": "2027-03-12T14:00:00Z"},
        {"local": "2027-03-15T09:00:00-04:00", "utc": "2027-03-15T13:00:00Z"},
        {"local": "2027-03-16T09:00:00-04:00", "utc": "2027-03-16T13:00:00Z"},
    ]
    assert json.loads(as_json.stdout) == expected
    # and the table prints each local time beside its UTC time
    assert as_text.returncode == 0, as_text.stderr
    lines = as_text.stdout.splitlines()
    for row in expected:
        assert any(row["local"] in line and row["utc"] in line for line in lines), row


def test_cli_pause_resume_show_and_remove(sqlite_url: str, tmp_path: Path) -> None:
    dialq(sqlite_url, tmp_path, "add", "pulse", "+14155550123", "--every", "15m")
    assert dialq(sqlite_url, tmp_path, "pause", "pulse").returncode == 0
    shown = json.loads(dialq(sqlite_url, tmp_path, "show", "pulse", "--json").stdout)
    assert (shown["state"], shown["next"], shown["occurrences"]) == ("paused", None, [])
    assert dialq(sqlite_url, tmp_path, "resume", "pulse").returncode == 0
    shown = json.loads(dialq(sqlite_url, tmp_path, "show", "pulse", "--json").stdout)
    assert shown["state"] == "active"
    assert shown["call"] == {"phone_number": "+14155550123"}
    assert dialq(sqlite_url, tmp_path, "remove", "pulse").returncode == 0
    assert json.loads(dialq(sqlite_url, tmp_path, "list", "--json").stdout) == []
