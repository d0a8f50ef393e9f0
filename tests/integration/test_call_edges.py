"""Edges of a call's life: deadlines, spent budgets, cancels in every state, leases, accounts.

Real worker processes, the sandbox over HTTP, the test database and a private Redis.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

import dialq
from dialq.api import producer_runtime
from dialq.store import Call
from tests.stack import APP_ID, APP_SECRET, Stack

NUMBER = "+14155550110"
START = {"path": "/v1/endpoint:connect", "operation": "start"}
STOP = {"path": "/v1/endpoint:connect", "operation": "stop"}


def _set(stack: Stack, call_id: str, **values: object) -> None:
    runtime = producer_runtime(stack.settings)
    with runtime.db.transaction() as session:
        session.execute(update(Call).where(Call.id == call_id).values(**values))


def test_the_package_itself_enqueues_and_cancels(stack: Stack) -> None:
    # given no worker, when a call is enqueued and canceled through `dialq.` itself
    handle = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    result = dialq.cancel_call(handle.id, settings=stack.settings)
    # then it was recorded, and is canceled
    assert (result.status, result.changed) == ("canceled", True)
    assert stack.call(handle.id)["status"] == "canceled"


def test_a_call_refused_429_until_its_deadline_fails_with_reason_deadline(stack: Stack) -> None:
    # given an API that answers every start 429, and a dial deadline of 2 s
    stack.env["DIALQ_DIAL_DEADLINE_S"] = "2"
    stack.sandbox.control.script(
        [{"match": START, "times": 1000, "action": {"type": "status", "status": 429}}]
    )
    stack.start_worker()
    # when a call is placed
    handle = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    # then it waits and retries, and fails once the deadline is reached, not before
    call = stack.wait_for(handle.id, {"failed"}, timeout_s=20)
    assert call["reason"].startswith("deadline")
    assert call["capacity_waits"] >= 1
    lasted_s = (
        datetime.fromisoformat(call["ended_at"]) - datetime.fromisoformat(call["created_at"])
    ).total_seconds()
    assert lasted_s >= 1.0  # it kept trying rather than giving up at the first 429
    assert producer_runtime(stack.settings).capacity.usage("default").permits_in_use == 0


def test_a_start_answered_5xx_past_the_failure_budget_fails_the_call(stack: Stack) -> None:
    # given a failure budget of 2 retries and an API that answers every start 503, with the
    # account's circuit out of the way (it would hold the call through an outage instead;
    # tests/integration/test_api_outage.py)
    stack.env["DIALQ_FAILURE_RETRY_BUDGET"] = "2"
    stack.env["DIALQ_API_CIRCUIT_THRESHOLD"] = "100"
    stack.sandbox.control.script(
        [{"match": START, "times": 1000, "action": {"type": "status", "status": 503}}]
    )
    stack.start_worker()
    # when a call is placed
    handle = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    # then it is tried once plus twice more, then fails saying why
    call = stack.wait_for(handle.id, {"failed"}, timeout_s=20)
    assert call["reason"].startswith("retries exhausted")
    assert [s["status"] for s in stack.starts_for(handle.id)] == [503, 503, 503]
    assert call["start_attempts"] == 3
    assert call["failures"] == 2  # the retries it spent: the whole budget


def test_a_maximum_duration_stop_answered_404_completes_the_call(stack: Stack) -> None:
    # given a call whose stop request the API answers 404 (it had already ended there)
    stack.sandbox.control.script(
        [{"match": STOP, "times": 1, "action": {"type": "status", "status": 404}}]
    )
    stack.start_worker()
    # when the call reaches its maximum duration
    handle = dialq.enqueue_call(
        {"phone_number": NUMBER, "max_duration_s": 10}, settings=stack.settings
    )
    # then it is completed (the call is over either way), not failed
    call = stack.wait_for(handle.id, {"completed", "failed"}, timeout_s=30)
    assert call["status"] == "completed"
    assert call["duration_s"] is not None
    assert 10 <= call["duration_s"] <= 13


def test_cancel_of_a_waiting_call_means_it_is_never_dialed(stack: Stack) -> None:
    # given a limit of 1 held by a live call, and a second call waiting for it
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "1"
    stack.start_worker()
    live = dialq.enqueue_call(
        {"phone_number": NUMBER, "max_duration_s": 60}, settings=stack.settings
    )
    stack.wait_for(live.id, {"connected"})
    waiter = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(waiter.id, {"waiting"})
    # when the waiting call is canceled, and then the live one ends and frees the permit
    result = dialq.cancel_call(waiter.id, settings=stack.settings)
    stack.sandbox.control.end_call(stack.call(live.id)["connection_id"])
    stack.wait_for(live.id, {"completed"})
    time.sleep(1.5)
    # then the canceled call was never dialed, and no permit or waiting entry is left
    assert (result.status, result.changed) == ("canceled", True)
    assert stack.call(waiter.id)["status"] == "canceled"
    assert stack.starts_for(waiter.id) == []
    usage = producer_runtime(stack.settings).capacity.usage("default")
    assert (usage.permits_in_use, usage.waiting_in_redis) == (0, 0)


def test_cancel_of_an_unknown_call_closes_it_and_says_to_check_symbl(stack: Stack) -> None:
    # given a call whose start outcome is unknown
    handle = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    _set(stack, handle.id, status="unknown")
    # when it is canceled
    result = dialq.cancel_call(handle.id, settings=stack.settings)
    # then it is canceled, never redialed, and the reason says Symbl may still have it
    assert (result.status, result.changed) == ("canceled", True)
    call = stack.call(handle.id)
    assert call["status"] == "canceled"
    assert "check Symbl" in call["reason"]


def test_the_cancel_command_cancels_and_reports_json(stack: Stack) -> None:
    # given a queued call and no worker
    handle = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    # when `dialq cancel --json` runs twice
    first = stack.cli("cancel", handle.id, "--json")
    second = stack.cli("cancel", handle.id, "--json")
    # then the first cancels it and the second says it was left as it is
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["changed"] is True
    assert json.loads(second.stdout)["changed"] is False
    assert stack.call(handle.id)["status"] == "canceled"


def test_the_calls_command_filters_by_status_and_limit_and_refuses_an_unknown_status(
    stack: Stack,
) -> None:
    # given three queued calls, one of them canceled
    handles = [
        dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings) for _ in range(3)
    ]
    dialq.cancel_call(handles[0].id, settings=stack.settings)
    # when calls are listed by status, with a limit, and with a status that does not exist
    queued = stack.cli("calls", "--status", "queued", "--json")
    one = stack.cli("calls", "--limit", "1", "--json")
    bogus = stack.cli("calls", "--status", "bogus")
    # then each answers as asked, and the unknown status is refused by name (exit 2)
    assert {c["id"] for c in json.loads(queued.stdout)} == {handles[1].id, handles[2].id}
    assert len(json.loads(one.stdout)) == 1
    assert bogus.returncode == 2
    assert "--status" in bogus.stderr
    assert "bogus" in bogus.stderr


def test_a_live_calls_permit_is_renewed_past_its_first_lease(stack: Stack) -> None:
    # given a 1 s lease margin and a start the API answers after 4 s, so a lease taken at the
    # grant (max duration 10 s + 1 s) would run out while the call is still live
    stack.env["DIALQ_PERMIT_LEASE_MARGIN_S"] = "1"
    stack.env["DIALQ_HTTP_READ_TIMEOUT_S"] = "8"
    stack.sandbox.control.script(
        [{"match": START, "times": 1, "action": {"type": "slow", "seconds": 4}}]
    )
    stack.start_worker()
    granted = time.monotonic()
    handle = dialq.enqueue_call(
        {"phone_number": NUMBER, "max_duration_s": 10}, settings=stack.settings
    )
    stack.wait_for(handle.id, {"connected"})
    # when the first lease would have run out (12 s after the grant) with the call still live
    time.sleep(max(0.0, granted + 12 - time.monotonic()))
    # then the call still holds its permit, renewed by its watcher
    assert stack.call(handle.id)["status"] == "connected"
    assert producer_runtime(stack.settings).capacity.holders("default") == [handle.id]
    stack.wait_for(handle.id, {"completed"}, timeout_s=20)


def test_a_full_account_never_delays_another_accounts_calls(stack: Stack) -> None:
    # given two accounts: `default` limited to one call, `sales` to five
    sales = {"app_id": APP_ID, "app_secret": APP_SECRET, "base_url": stack.sandbox.url}
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "1"
    stack.env["DIALQ_ACCOUNTS"] = json.dumps({"sales": {**sales, "max_concurrent_calls": 5}})
    stack.start_worker()
    busy = dialq.enqueue_call(
        {"phone_number": NUMBER, "max_duration_s": 60}, settings=stack.settings
    )
    stack.wait_for(busy.id, {"connected"})
    waiting = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(waiting.id, {"waiting"})
    # when calls from the other account are placed while `default` is full
    began = time.monotonic()
    others = [
        dialq.enqueue_call({"phone_number": NUMBER, "account": "sales"}, settings=stack.settings)
        for _ in range(3)
    ]
    # then they all connect at once, while `default`'s call still waits
    for other in others:
        stack.wait_for(other.id, {"connected"}, timeout_s=10)
    assert time.monotonic() - began < 8
    assert stack.call(waiting.id)["status"] == "waiting"
    runtime = producer_runtime(stack.settings)
    assert runtime.capacity.usage("sales").permits_in_use == 3
    assert runtime.capacity.usage("default").permits_in_use == 1


def test_two_watchdogs_republishing_a_lost_dial_message_still_dial_once(stack: Stack) -> None:
    # given a queued call whose dial message was lost an hour ago
    handle = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    _set(stack, handle.id, dispatch_due_at=long_ago)
    service = producer_runtime(stack.settings).service
    # when two watchdog ticks run at once, and then a worker starts
    ticks = [threading.Thread(target=service.watchdog) for _ in range(2)]
    for tick in ticks:
        tick.start()
    for tick in ticks:
        tick.join()
    stack.start_worker()
    # then the call connects, and only one start request was ever sent for it
    stack.wait_for(handle.id, {"connected"})
    time.sleep(1.0)
    assert len(stack.starts_for(handle.id)) == 1


def test_the_alert_policy_logs_unknown_calls_for_a_person_and_leaves_them(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # given a call whose start outcome is unknown, under the default `alert` policy
    handle = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    _set(stack, handle.id, status="unknown", updated_at=datetime.now(UTC) - timedelta(hours=1))
    # when the watchdog ticks
    with caplog.at_level(logging.WARNING, logger="dialq.watchdog"):
        report = producer_runtime(stack.settings).service.watchdog()
    # then it says so, points at the command, and leaves the call alone
    assert report["unknown_waiting_for_a_person"] == 1
    assert report["unknown_redialed"] == 0
    assert "dialq calls --status unknown" in caplog.text
    assert stack.call(handle.id)["status"] == "unknown"
