"""The interfaces other tools script against: the CLI and the by-name task."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from dialq.api import producer_runtime
from dialq.store import calls_repo
from dialq.store.tables import Call
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


def test_cli_call_json_then_show_json_gives_the_documented_fields(stack: Stack) -> None:
    # given a worker
    stack.start_worker()
    # when a call is placed from the CLI
    placed = stack.cli("call", "+14155550123", "--name", "Standup", "--dtmf", "123#", "--json")
    # then it prints one JSON object with id and status, and `show --json` tells the whole story
    assert placed.returncode == 0, placed.stderr
    created = json.loads(placed.stdout)
    assert created["status"] == "queued"
    stack.wait_for(created["id"], {"connected"})
    shown = stack.cli("show", created["id"], "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    for key in (
        "id", "status", "reason", "phone_number", "conversation_id", "connection_id",
        "event_url", "result_websocket_url", "attempts", "events",
    ):  # fmt: skip
        assert key in detail
    assert detail["status"] == "connected"
    assert [e["to"] for e in detail["events"]] == ["queued", "dialing", "connected"]
    listed = stack.cli("calls", "--json")
    rows = json.loads(listed.stdout)
    assert [row["id"] for row in rows] == [created["id"]]
    assert "attempts" not in rows[0]
    assert "events" not in rows[0]


def test_cli_invalid_input_exits_2_naming_the_field_and_writes_nothing(stack: Stack) -> None:
    bad_number = stack.cli("call", "12345", "--json")
    bad_dtmf = stack.cli("call", "+14155550123", "--dtmf", "12a#")
    bad_duration = stack.cli("call", "+14155550123", "--max-duration", "forever")
    assert (bad_number.returncode, bad_dtmf.returncode, bad_duration.returncode) == (2, 2, 2)
    assert "phone_number" in bad_number.stderr
    assert "dtmf" in bad_dtmf.stderr
    assert "max_duration" in bad_duration.stderr
    with producer_runtime(stack.settings).db.sessions() as session:
        assert calls_repo.list_calls(session) == []


def test_cli_show_of_an_unknown_call_exits_1(stack: Stack) -> None:
    assert stack.cli("show", "no-such-call").returncode == 1


def test_example_producer_imports_only_celery_and_its_call_is_placed(stack: Stack) -> None:
    # given the example producer, which must not depend on dialq
    source = (ROOT / "examples" / "producer.py").read_text()
    imported = {
        (node.module or "").split(".")[0]
        if isinstance(node, ast.ImportFrom)
        else alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == {"celery"}
    stack.start_worker()
    # when it sends dialq.place_call by name
    sent = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "producer.py"),
            "+14155550199",
            "--name",
            "From afar",
        ],
        env=stack.process_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    # then a call row appears and connects
    runtime = producer_runtime(stack.settings)
    for _ in range(100):
        with runtime.db.sessions() as session:
            rows = calls_repo.list_calls(session)
        if rows:
            break
        import time

        time.sleep(0.1)
    assert len(rows) == 1
    stack.wait_for(rows[0].id, {"connected"})
    assert rows[0].phone_number == "+14155550199"


def test_a_by_name_payload_that_is_invalid_is_rejected_with_nothing_written(stack: Stack) -> None:
    from celery import Celery

    stack.start_worker()
    client = Celery(broker=stack.env["DIALQ_BROKER_URL"])
    client.send_task(
        "dialq.place_call",
        kwargs={"request": {"phone_number": "+14155550123", "dtmf": "x"}},
        queue="dialq.dial",
    )
    client.send_task(
        "dialq.place_call",
        kwargs={"request": {"phone_number": "+14155550124", "session_name": "ok"}},
        queue="dialq.dial",
    )
    runtime = producer_runtime(stack.settings)
    import time

    deadline = time.monotonic() + 20
    rows: list[Call] = []
    while time.monotonic() < deadline and not rows:
        with runtime.db.sessions() as session:
            rows = calls_repo.list_calls(session)
        time.sleep(0.1)
    time.sleep(1.0)
    with runtime.db.sessions() as session:
        rows = calls_repo.list_calls(session)
    assert [row.phone_number for row in rows] == ["+14155550124"]
    logs = stack.worker_logs()
    assert "dtmf" in logs
    assert "4155550123" not in logs  # the rejected number is never logged


def test_the_calls_table_prints_short_ids_that_show_cancel_and_transcript_accept(
    stack: Stack,
) -> None:
    # given two queued calls (no worker runs, so they stay queued)
    placed = [
        json.loads(stack.cli("call", number, "--json").stdout)["id"]
        for number in ("+14155550123", "+14155550124")
    ]
    # when `dialq calls` prints its table in an 80-column terminal
    listed = stack.cli("calls")
    # then each call's short id and masked number are there whole, on one line
    assert listed.returncode == 0, listed.stderr
    for call_id, tail in zip(placed, ("0123", "0124"), strict=True):
        (line,) = [line for line in listed.stdout.splitlines() if call_id[:8] in line]
        assert f"+1******{tail}" in line
    # and the short id names the call for show, cancel and transcript
    short = placed[0][:8]
    canceled = stack.cli("cancel", short, "--json")
    assert canceled.returncode == 0, canceled.stderr
    assert json.loads(canceled.stdout)["id"] == placed[0]
    shown = json.loads(stack.cli("show", short, "--json").stdout)
    assert (shown["id"], shown["status"]) == (placed[0], "canceled")
    other = json.loads(stack.cli("show", placed[1][:8], "--json").stdout)
    assert other["status"] == "queued"
    transcript = stack.cli("transcript", short)
    assert transcript.returncode == 1
    assert f"no transcript for {placed[0]}" in transcript.stderr


def test_a_short_id_two_calls_share_is_refused_with_exit_2_and_nothing_canceled(
    stack: Stack,
) -> None:
    # given two calls whose ids share their first eight characters
    placed = json.loads(stack.cli("call", "+14155550123", "--json").stdout)["id"]
    twin = placed[:8] + "-0000-4000-8000-000000000000"
    runtime = producer_runtime(stack.settings)
    with runtime.db.transaction() as session:
        original = calls_repo.get_call(session, placed)
        assert original is not None
        columns = {c.key: getattr(original, c.key) for c in Call.__table__.columns}
        calls_repo.add_call(session, Call(**{**columns, "id": twin, "idempotency_key": None}))
    # when a cancel names them by that shared start
    result = stack.cli("cancel", placed[:8])
    # then it exits 2 naming the argument, and both calls are still queued
    assert result.returncode == 2
    assert "call_id" in result.stderr
    with runtime.db.sessions() as session:
        rows = [calls_repo.get_call(session, call_id) for call_id in (placed, twin)]
        statuses = {row.status if row else None for row in rows}
    assert statuses == {"queued"}
