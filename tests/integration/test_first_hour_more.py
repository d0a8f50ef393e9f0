"""Issue #20, what the first pass left: the sandbox's URL line, quiet beat ticks, `dialq flower
--help`, and the examples' answers. Real processes throughout; CLI output read at 80 and 60
columns and piped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dialq.api import producer_runtime
from dialq.store import Database, calls_repo
from tests.schedule_helpers import empty_tables
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
WIDTHS = ["80", "60", None]  # None: piped with no COLUMNS at all


def run_env(columns: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_") and k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    return env | (extra or {})


def dialq(*args: str, columns: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialq.cli", *args],
        env=run_env(columns),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def flat(text: str) -> str:
    """The words of a help screen, whatever the width folded and boxed."""
    return " ".join(text.replace("│", " ").split())


# -- dialq sandbox --------------------------------------------------------------------------


def test_the_sandbox_prints_its_url_once_bound_and_that_url_answers_at_once() -> None:
    # given `dialq sandbox` on port 0, stdout piped
    command = [sys.executable, "-m", "dialq.cli", "sandbox", "--port", "0"]
    with subprocess.Popen(command, env=run_env(None), stdout=subprocess.PIPE, text=True) as process:
        try:
            # when its first line is read
            assert process.stdout is not None
            line = process.stdout.readline()
            # then it names the port the OS chose, and that URL answers without a second try
            assert line.startswith("Symbl sandbox on http://127.0.0.1:"), line
            url = line.split()[3]
            assert not url.endswith(":0")
            assert requests.get(f"{url}/_sandbox/config", timeout=5).status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize("columns", WIDTHS)
def test_a_busy_port_is_one_error_line_exit_2_and_no_url(busy_port: int, columns: str) -> None:
    # when the sandbox is asked for a port another process listens on
    result = dialq("sandbox", "--port", str(busy_port), columns=columns)
    # then no URL is printed, and one line on stderr says why and which option to change
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use (see --port)"
    ]


# -- dialq flower ---------------------------------------------------------------------------


@pytest.mark.parametrize("columns", WIDTHS)
def test_flower_help_says_what_dialq_sets_and_what_it_does_not(columns: str) -> None:
    # when a new user asks for flower's help
    result = dialq("flower", "--help", columns=columns)
    # then it is dialq's help, at the width asked, naming the app, the broker setting, how the
    # rest reaches Flower, and that the compose hardening is not there natively
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= int(columns or 80) for line in result.stdout.splitlines())
    words = flat(result.stdout)
    for said in (
        "celery -A dialq.worker flower -- ARGS",
        "DIALQ_BROKER_URL",
        "`dialq flower -- --help` lists them all",
        "listens on every interface on port 5555, asks for no login",
        "docker-compose.yml adds --read_only",
    ):
        assert said in words, said


def test_flower_own_options_are_listed_through_a_double_dash() -> None:
    result = dialq("flower", "--", "--help", columns=None)
    # Flower (tornado) prints its options on stderr
    assert result.returncode == 0, result.stderr
    assert "--basic-auth" in result.stderr
    assert "--read-only" in result.stderr


# -- beat ticks in the worker log ------------------------------------------------------------


@pytest.fixture
def ticking(stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    """The stack with a schedule every 2 s in its file and the dispatcher ticking every 0.5 s."""
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    empty_tables(db)
    schedules_file = tmp_path / "schedules.toml"
    schedules_file.write_text(
        '[schedules.pulse]\nevery = "2s"\noverlap = "allow"\n'
        'call = { phone_number = "+14155550123", session_name = "Pulse" }\n'
    )
    stack.env |= {"DIALQ_SCHEDULES_FILE": str(schedules_file), "DIALQ_SCHEDULE_TICK_S": "0.5"}
    yield stack
    stack.stop_workers()
    empty_tables(db)
    db.dispose()


def test_idle_ticks_leave_no_info_line_and_busy_ticks_still_say_what_they_did(
    ticking: Stack,
) -> None:
    # given a worker and beat: four dispatcher ticks for each occurrence due
    ticking.start_worker()
    ticking.start_beat()
    # when they run for a while
    time.sleep(7)
    ticking.stop_workers()
    log = ticking.worker_logs()
    # then no tick's "received" line is at INFO, and the dispatcher's INFO lines are the ticks
    # that placed a call: a handful, not two a second
    info = [line for line in log.splitlines() if " INFO " in line]
    assert not [line for line in info if "received" in line and "dialq.sweep" in line]
    dispatch = [line for line in info if "dialq.dispatch_schedules[" in line]
    assert not [line for line in dispatch if "received" in line]
    assert 1 <= len(dispatch) <= 5, dispatch
    assert all("'placed': 1" in line for line in dispatch), dispatch


# -- the examples ----------------------------------------------------------------------------


def example(stack: Stack, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        env=stack.process_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_python_api_example_prints_the_call_id_or_exits_2_naming_the_field(
    stack: Stack,
) -> None:
    # when the Python API example is given a valid request, then an invalid one
    placed = example(stack, "enqueue.py", "+14155550123", "--idempotency-key", "crm-1")
    refused = example(stack, "enqueue.py", "12345")
    # then the first prints the call's id (a row), the second exits 2 naming the field
    assert placed.returncode == 0, placed.stderr
    answer = json.loads(placed.stdout)
    assert (answer["status"], answer["created"]) == ("queued", True)
    assert f"dialq show {answer['id']}" in placed.stderr
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.startswith("invalid: phone_number: ")
    with producer_runtime(stack.settings).db.sessions() as session:
        assert [call.id for call in calls_repo.list_calls(session)] == [answer["id"]]


def test_the_celery_only_example_prints_the_key_that_finds_its_call(stack: Stack) -> None:
    # given a worker, and the Celery-only producer given no key of its own
    stack.start_worker()
    sent = example(stack, "producer.py", "+14155550199")
    assert sent.returncode == 0, sent.stderr
    key = sent.stdout.split("idempotency_key ")[1].split()[0]
    # when `dialq calls --json` is read as the example says
    deadline = time.monotonic() + 20
    rows: list[dict[str, object]] = []
    while not rows and time.monotonic() < deadline:
        listed = stack.cli("calls", "--json")
        rows = [row for row in json.loads(listed.stdout) if row["idempotency_key"] == key]
        time.sleep(0.1)
    # then exactly one call holds the key it printed
    assert len(rows) == 1
