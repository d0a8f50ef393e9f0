"""Placing calls end to end: real worker processes, real Redis, a real database, the sandbox."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from dialq import routing
from dialq.api import enqueue_call, producer_runtime
from dialq.calls.request import InvalidCallRequest
from tests.stack import Stack

START = {"path": "/v1/endpoint:connect", "operation": "start"}
NUMBER = "+1 415 555 0110"


def test_a_call_goes_queued_dialing_connected_with_the_sandbox_ids_and_one_start_request(
    stack: Stack,
) -> None:
    # given a worker
    stack.start_worker()
    # when a call is enqueued
    handle = enqueue_call(
        {"phone_number": NUMBER, "session_name": "Weekly sync"}, settings=stack.settings
    )
    # then it connects, with the ids the sandbox returned, after exactly one start request
    call = stack.wait_for(handle.id, {"connected"})
    starts = stack.starts_for(handle.id)
    assert [s["status"] for s in starts] == [201]
    sandbox_call = next(
        c for c in stack.sandbox.control.calls() if c["connectionId"] == call["connection_id"]
    )
    assert call["conversation_id"] == sandbox_call["conversationId"]
    assert call["event_url"].endswith(f"/v1/event/{call['connection_id']}")
    assert call["result_websocket_url"].endswith(f"/events/{call['connection_id']}")
    assert [e["to"] for e in call["events"]] == ["queued", "dialing", "connected"]
    assert call["phone_number"] == "+14155550110"
    assert starts[0]["body"]["endpoint"]["phoneNumber"] == "14155550110"


def test_the_same_dial_message_delivered_five_times_at_once_sends_one_start_request(
    stack: Stack,
) -> None:
    # given a queued call whose message nobody has consumed yet (no worker running)
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    app = producer_runtime(stack.settings).service.ctx.publisher  # publishes through Celery
    # when four more copies of its dial message are published, and a worker with 8 threads starts
    for _ in range(4):
        app.publish(routing.DIAL, handle.id, 0)
    stack.start_worker(concurrency=8)
    stack.wait_for(handle.id, {"connected"})
    time.sleep(1.0)  # let every copy be consumed
    # then exactly one start request reached the API
    assert len(stack.starts_for(handle.id)) == 1
    assert redis.Redis.from_url(stack.env["DIALQ_BROKER_URL"]).llen(routing.QUEUE_DIAL) == 0


def test_duplicate_deliveries_to_two_workers_still_send_one_start_request(stack: Stack) -> None:
    # given two workers
    stack.start_worker(concurrency=4)
    stack.start_worker(concurrency=4)
    publisher = producer_runtime(stack.settings).service.ctx.publisher
    # when each of ten calls has its message published five times, from several threads at once
    handles = [enqueue_call({"phone_number": NUMBER}, settings=stack.settings) for _ in range(10)]

    def publish_four_times(call_id: str) -> None:
        for _ in range(4):
            publisher.publish(routing.DIAL, call_id, 0)

    threads = [threading.Thread(target=publish_four_times, args=(h.id,)) for h in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then every call connects after exactly one start request
    for handle in handles:
        stack.wait_for(handle.id, {"connected"})
    time.sleep(1.0)
    assert [len(stack.starts_for(h.id)) for h in handles] == [1] * 10


def test_429_429_503_then_201_connects_after_four_attempts_all_recorded(stack: Stack) -> None:
    # given the API answers 429, 429, 503 before accepting
    stack.sandbox.control.script(
        [
            {"match": START, "nth": [1, 2], "action": {"type": "status", "status": 429}},
            {"match": START, "nth": [3], "action": {"type": "status", "status": 503}},
        ]
    )
    stack.start_worker()
    # when a call is placed
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    # then it connects on the fourth start request, each one recorded as an attempt
    call = stack.wait_for(handle.id, {"connected"})
    assert [s["status"] for s in stack.starts_for(handle.id)] == [429, 429, 503, 201]
    start_attempts = [a["status_code"] for a in call["attempts"] if a["operation"] == "start"]
    assert start_attempts == [429, 429, 503, 201]
    assert call["capacity_waits"] == 2  # 429s spend no failure budget
    assert call["failures"] == 1
    assert call["start_attempts"] == 4
    assert "waiting" in [e["to"] for e in call["events"]]


def test_400_fails_the_call_with_the_api_message_and_is_never_retried(stack: Stack) -> None:
    stack.sandbox.control.script(
        [
            {
                "match": START,
                "times": 1,
                "action": {
                    "type": "status",
                    "status": 400,
                    "body": {"message": "number not reachable"},
                },
            }
        ]
    )
    stack.start_worker()
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    call = stack.wait_for(handle.id, {"failed"})
    assert call["reason"] == "rejected: number not reachable"
    time.sleep(1.0)
    assert len(stack.starts_for(handle.id)) == 1


def test_401_renews_the_token_once_and_retries_once(stack: Stack) -> None:
    stack.sandbox.control.script(
        [{"match": START, "times": 1, "action": {"type": "status", "status": 401}}]
    )
    stack.start_worker()
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(handle.id, {"connected"})
    assert [s["status"] for s in stack.starts_for(handle.id)] == [401, 201]
    token_requests = [
        r for r in stack.sandbox.control.requests() if r["path"] == "/oauth2/token:generate"
    ]
    assert len(token_requests) == 2  # the first token, then one renewal


def test_a_hang_after_the_request_leaves_the_call_unknown_and_never_redials(stack: Stack) -> None:
    # given the API reads the start request, then answers long after the client's read timeout
    stack.sandbox.control.script(
        [{"match": START, "times": 1, "action": {"type": "hang", "seconds": 6}}]
    )
    stack.start_worker()
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    # then the outcome is unknown, and no second start request is ever sent
    call = stack.wait_for(handle.id, {"unknown"})
    assert (
        "timeout" in (call["reason"] or "").lower() or "unknown" in (call["reason"] or "").lower()
    )
    time.sleep(2.0)
    assert len(stack.starts_for(handle.id)) == 1


def test_a_dropped_connection_after_the_request_leaves_the_call_unknown(stack: Stack) -> None:
    stack.sandbox.control.script([{"match": START, "times": 1, "action": {"type": "drop_after"}}])
    stack.start_worker()
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(handle.id, {"unknown"})
    time.sleep(1.0)
    assert len(stack.starts_for(handle.id)) == 1


def test_the_same_idempotency_key_returns_the_existing_call_and_places_nothing_new(
    stack: Stack,
) -> None:
    stack.start_worker()
    first = enqueue_call(
        {"phone_number": NUMBER, "idempotency_key": "sync-42"}, settings=stack.settings
    )
    second = enqueue_call(
        {"phone_number": NUMBER, "idempotency_key": "sync-42"}, settings=stack.settings
    )
    assert (first.created, second.created) == (True, False)
    assert second.id == first.id
    stack.wait_for(first.id, {"connected"})
    time.sleep(0.5)
    assert len([r for r in stack.sandbox.control.requests() if r.get("operation") == "start"]) == 1


def test_an_invalid_request_writes_nothing_and_publishes_nothing(stack: Stack) -> None:
    with pytest.raises(InvalidCallRequest, match="phone_number"):
        enqueue_call({"phone_number": "+44 20 7946 0958"}, settings=stack.settings)
    runtime = producer_runtime(stack.settings)
    with runtime.db.sessions() as session:
        from dialq.store import calls_repo

        assert calls_repo.list_calls(session) == []
    assert redis.Redis.from_url(stack.env["DIALQ_BROKER_URL"]).llen(routing.QUEUE_DIAL) == 0
