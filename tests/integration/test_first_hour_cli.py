"""Issue #20, the CLI as a new user meets it: output read at 80 and 60 columns and piped.

Every command runs in a process of its own against a real SQLite database (and, for `dialq call`,
the private Redis as broker); rows are written with the real store beforehand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dialq.store import Call, Database
from dialq.store import calls_repo as repo

WIDTHS = ["80", "60", None]  # None: piped with no COLUMNS at all
LONG_REASON = "ConnectionError: ConnectionRefusedError: [Errno 111] Connection refused"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def run(
    env: dict[str, str], *args: str, columns: str | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_") and k != "COLUMNS"}
    full |= env
    if columns is not None:
        full["COLUMNS"] = columns
    return subprocess.run(
        [sys.executable, "-m", "dialq.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    # A broker nothing listens on: commands that need one get the `broker` fixture instead.
    return {
        "DIALQ_DATABASE_URL": sqlite_url,
        "DIALQ_DATA_DIR": str(tmp_path),
        "DIALQ_BROKER_URL": "redis://127.0.0.1:1/0",
    }


@pytest.fixture
def broker(env: dict[str, str], redis_url: str) -> dict[str, str]:
    return env | {"DIALQ_BROKER_URL": redis_url}


def store_calls(url: str, *calls: dict[str, object]) -> list[str]:
    db = Database(url)
    db.upgrade()
    ids = []
    with db.transaction() as session:
        for index, fields in enumerate(calls):
            call_id = str(uuid.uuid4())
            ids.append(call_id)
            row: dict[str, object] = {
                "id": call_id,
                "status": "queued",
                "account": "default",
                "phone_number": "+14155550123",
                "request": {"phone_number": "+14155550123"},
                "priority": 5,
                "max_duration_s": 60,
                "deadline_at": T0 + timedelta(hours=1),
                "start_attempts": 1,
                "failures": 0,
                "capacity_waits": 0,
                "created_at": T0 + timedelta(seconds=index),
                "updated_at": T0,
            }
            repo.add_call(session, Call(**(row | fields)))
    db.dispose()
    return ids


def column_text(
    lines: list[str], header: str, start: int, stop: int, *, until: str | None = None
) -> str:
    """What one column holds over lines [start, stop), spaces left out: read from its header's
    offset to the next header's (`until`) or the end of the line."""
    at = lines[0].index(header)
    end = lines[0].index(until) if until else None
    return "".join("".join(line[at:end].split()) for line in lines[start:stop])


# -- dialq calls -------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", WIDTHS)
def test_the_calls_table_fits_the_width_and_keeps_every_character_of_a_folded_reason(
    env: dict[str, str], sqlite_url: str, columns: str | None
) -> None:
    # given a failed call with a long reason and a connected one
    store_calls(
        sqlite_url,
        {"status": "failed", "reason": LONG_REASON, "conversation_id": "5812345678901234"},
        {"status": "failed", "reason": "stopped while live"},
    )
    # when the calls are listed
    listed = run(env, "calls", columns=columns)
    # then no line is wider than the terminal, and none is blank
    assert listed.returncode == 0, listed.stderr
    width = int(columns or 80)
    lines = listed.stdout.splitlines()
    assert all(len(line) <= width for line in lines), listed.stdout
    assert all(line.strip() for line in lines), listed.stdout
    # and each reason reads whole, top to bottom (the newest call, "stopped while live", first)
    table = [line for line in lines if not line.startswith("(")]
    first, second = [i for i, line in enumerate(table) if i > 1 and line[:8].strip()]
    assert column_text(table, "reason", first, second) == "stoppedwhilelive"
    folded = column_text(table, "reason", second, len(table))
    assert folded == LONG_REASON.replace(" ", "")
    # and what a narrow terminal leaves out is named
    if width < 80:
        assert lines[-1] == "(not shown at this width: conversation; use --json)"
    else:
        assert "5812345678901234" in listed.stdout


# -- ids, show, transcript, db upgrade ------------------------------------------------------------


def test_an_id_under_four_characters_is_refused_as_too_short_with_exit_2(
    env: dict[str, str], sqlite_url: str
) -> None:
    store_calls(sqlite_url, {})
    shown = run(env, "show", "b0")
    assert shown.returncode == 2
    assert "call_id: 'b0' is too short; give at least 4 characters" in shown.stderr
    assert "no call" not in shown.stderr


def test_show_and_transcript_of_a_call_that_never_connected_say_so(
    env: dict[str, str], sqlite_url: str
) -> None:
    # given a call that failed before it connected
    [call_id] = store_calls(sqlite_url, {"status": "failed", "reason": "http 400"})
    # when its transcript and its details are asked for
    transcript = run(env, "transcript", call_id[:8])
    shown = run(env, "show", call_id[:8], columns="80")
    # then both say it never connected, not that insights are not harvested yet
    assert transcript.returncode == 1
    assert "never connected" in transcript.stderr
    assert "harvested" not in transcript.stderr
    assert shown.returncode == 0, shown.stderr
    assert "insights: this call never connected (it is failed)" in shown.stdout


def test_db_upgrade_says_it_created_a_new_database_then_that_there_was_nothing_to_do(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = env | {"DIALQ_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    first = run(env, "db", "upgrade")
    again = run(env, "db", "upgrade")
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert first.stdout.startswith("database created with the newest schema: sqlite:///")
    assert again.stdout.startswith("database already had the newest schema, nothing to do")


# -- dialq call ---------------------------------------------------------------------------------


def test_call_prints_its_status_once_and_takes_comma_separated_emails(
    broker: dict[str, str], sqlite_url: str
) -> None:
    placed = run(broker, "call", "+14155550123", "--email", "a@x.com,b@x.com", "--email", "c@x.com")
    assert placed.returncode == 0, placed.stderr
    assert placed.stdout.count("queued") == 1, placed.stdout
    [row] = json.loads(run(broker, "calls", "--json").stdout)
    shown = json.loads(run(broker, "show", row["id"], "--json").stdout)
    assert shown["status"] == "queued"
    db = Database(sqlite_url)
    with db.sessions() as session:
        stored = repo.get_call(session, row["id"])
        assert stored is not None
        assert stored.request["summary_emails"] == ["a@x.com", "b@x.com", "c@x.com"]
    db.dispose()


def test_a_callback_url_without_a_webhook_secret_is_warned_about_at_intake(
    broker: dict[str, str],
) -> None:
    url = "https://hooks.example.com/dialq"
    unsigned = run(broker, "call", "+14155550123", "--callback-url", url)
    signed = run(
        broker | {"DIALQ_WEBHOOK_SECRET": "s3cret"}, "call", "+14155550124", "--callback-url", url
    )
    assert (unsigned.returncode, signed.returncode) == (0, 0), unsigned.stderr + signed.stderr
    assert "DIALQ_WEBHOOK_SECRET is unset" in unsigned.stderr
    assert signed.stderr == ""


def test_an_error_on_stderr_stays_on_one_line_when_piped(broker: dict[str, str]) -> None:
    result = run(broker, "call", "12345", "--email", "bad0", "--email", "bad2", "--dtmf", "x")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert len(line) > 80
    for field in ("phone_number", "summary_emails[0]", "summary_emails[1]", "dtmf"):
        assert f"{field}:" in line


# -- help and version ---------------------------------------------------------------------------


def test_version_prints_the_installed_version(env: dict[str, str]) -> None:
    result = run(env, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("dialq ")


@pytest.mark.parametrize("columns", WIDTHS)
def test_help_shows_json_as_a_flag_without_a_value(
    env: dict[str, str], columns: str | None
) -> None:
    helped = run(env, "calls", "--help", columns=columns)
    [line] = [line for line in helped.stdout.splitlines() if "--json" in line]
    assert "<bool>" not in line


# -- dialq schedule -----------------------------------------------------------------------------


@pytest.mark.parametrize("columns", WIDTHS)
def test_schedule_list_fits_the_width_and_shows_one_off_times_in_their_own_zone(
    env: dict[str, str], columns: str | None
) -> None:
    # given a weekday schedule with a long name and a one-off, each in its own zone
    for args in (
        ["customer-renewals", "+14155550123", "--cron", "0 9 * * 1-5", "--tz", "America/New_York"],
        ["one-off", "+14155550123", "--at", "2030-01-31T14:30", "--tz", "Europe/Paris"],
    ):
        assert run(env, "schedule", "add", *args).returncode == 0
    # when they are listed
    listed = run(env, "schedule", "list", columns=columns)
    # then the table fits, states are whole and the one-off's time is local, on one line
    assert listed.returncode == 0, listed.stderr
    width = int(columns or 80)
    lines = listed.stdout.splitlines()
    assert all(len(line) <= width for line in lines), listed.stdout
    assert "2030-01-31T14:30:00+01:00" in listed.stdout
    assert listed.stdout.count("active") == 2
    name_cells = column_text(lines, "name", 2, 4, until="when")
    assert name_cells.startswith("customer-renewals")
    json_view = json.loads(run(env, "schedule", "list", "--json").stdout)
    assert json_view[1]["when"] == "at 2030-01-31T14:30:00+01:00"


def test_schedule_add_again_without_tz_keeps_the_zone_and_takes_session_name(
    env: dict[str, str],
) -> None:
    first = ["standup", "+14155550123", "--cron", "0 9 * * 1-5", "--tz", "America/New_York"]
    assert run(env, "schedule", "add", *first).returncode == 0
    again = run(
        env, "schedule", "add", "standup", "+14155550123", "--cron", "0 10 * * 1-5",
        "--session-name", "Standup",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    shown = json.loads(run(env, "schedule", "show", "standup", "--json").stdout)
    assert shown["timezone"] == "America/New_York"
    assert shown["call"]["session_name"] == "Standup"
    assert shown["next"].endswith(("T10:00:00-05:00", "T10:00:00-04:00"))


def test_schedule_add_refuses_to_take_over_a_schedule_declared_in_the_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(
        '[schedules.board]\ncron = "0 9 * * 1"\ncall = { phone_number = "+14155550123" }\n'
    )
    assert run(env, "schedule", "load", str(path)).returncode == 0
    taken = run(env, "schedule", "add", "board", "+14155550199", "--every", "1h")
    assert taken.returncode == 2
    assert "name: is declared in the schedules file" in taken.stderr
    shown = json.loads(run(env, "schedule", "show", "board", "--json").stdout)
    assert (shown["source"], shown["when"]) == ("file", "0 9 * * 1")


def test_schedule_add_refuses_an_interval_under_a_minute_and_reads_days(
    env: dict[str, str],
) -> None:
    every_second = run(env, "schedule", "add", "pulse", "+14155550123", "--every", "1s")
    assert every_second.returncode == 2
    assert "every: must be at least 60s" in every_second.stderr
    added = run(
        env, "schedule", "add", "pulse", "+14155550123", "--every", "1d", "--misfire-grace", "2d"
    )
    assert added.returncode == 0, added.stderr


def test_schedule_next_says_when_a_schedule_is_paused_or_asked_about_before_it_starts(
    env: dict[str, str],
) -> None:
    assert run(env, "schedule", "add", "pulse", "+14155550123", "--every", "15m").returncode == 0
    assert run(env, "schedule", "pause", "pulse").returncode == 0
    result = run(env, "schedule", "next", "pulse", "--after", "2001-01-01T00:00", "--json")
    assert result.returncode == 0, result.stderr
    assert "pulse is paused" in result.stderr
    assert "nothing comes before that" in result.stderr
    assert len(json.loads(result.stdout)) == 5


# -- dialq config -------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", WIDTHS)
def test_config_names_each_source_masks_secrets_and_warns_of_unknown_toml_keys(
    env: dict[str, str], tmp_path: Path, columns: str | None
) -> None:
    # given a dialq.toml with a key spelled as an environment variable, and a secret in the env
    (tmp_path / "dialq.toml").write_text(
        'DIALQ_BROKER_URL = "redis://other:6379/0"\nmax_concurrent_calls = 7\n'
    )
    env = env | {"DIALQ_SYMBL_APP_SECRET": "very-secret-value"}
    # when the effective settings are printed, from the directory holding the file
    full = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_") and k != "COLUMNS"}
    full |= env | ({"COLUMNS": columns} if columns else {})
    table = subprocess.run(
        [sys.executable, "-m", "dialq.cli", "config"],
        env=full, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    as_json = subprocess.run(
        [sys.executable, "-m", "dialq.cli", "config", "--json"],
        env=full, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    # then the unknown key is named with the spelling that works, and the secret never shows
    assert table.returncode == 0, table.stderr
    assert "unknown key 'DIALQ_BROKER_URL' ignored" in table.stderr
    assert "broker_url = ..." in table.stderr
    assert "very-secret-value" not in table.stdout + as_json.stdout
    assert all(len(line) <= int(columns or 80) for line in table.stdout.splitlines())
    sources = {row["name"]: (row["value"], row["source"]) for row in json.loads(as_json.stdout)}
    assert sources["max_concurrent_calls"] == (7, "dialq.toml")
    assert sources["symbl_app_secret"] == ("***", "environment")
    assert sources["broker_url"] == ("redis://127.0.0.1:1/0", "environment")
