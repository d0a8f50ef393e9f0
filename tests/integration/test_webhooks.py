"""Webhooks end to end: real worker process, Redis, database, sandbox and an HTTP receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from dialq.api import enqueue_call
from dialq.store import Database, insights_repo
from dialq.store import webhooks_repo as repo
from dialq.webhooks.payload import event_id
from dialq.webhooks.signing import verify_signature
from tests.stack import WEBHOOK_SECRET, Stack
from tests.webhook_receiver import Received, Receiver, running_receiver

NUMBER = "+1 415 555 0110"
FAST_INSIGHTS = {"DIALQ_INSIGHTS_BACKOFF_BASE_S": "0.3", "DIALQ_INSIGHTS_BACKOFF_MAX_S": "1"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def attempts(stack: Stack, call_id: str) -> list[dict[str, Any]]:
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.sessions() as session:
            rows = repo.attempts_of(session, call_id)
            return [
                {"seq": a.seq, "status": a.status_code, "error": a.error, "url": a.url}
                for a in rows
            ]
    finally:
        db.dispose()


def cursor(stack: Stack, call_id: str) -> dict[str, Any]:
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.sessions() as session:
            row = repo.get_cursor(session, call_id)
            assert row is not None, f"no webhook cursor for {call_id}"
            return {
                "delivered_seq": row.delivered_seq,
                "failures": row.failures,
                "gave_up_at": row.gave_up_at,
            }
    finally:
        db.dispose()


def wait_for_attempts(stack: Stack, call_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while len(found := attempts(stack, call_id)) < count:
        assert time.monotonic() < deadline, f"only {found}\n{stack.worker_logs()[-3000:]}"
        time.sleep(0.1)
    return found


def bodies(requests: list[Received]) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in requests]


def stored_insights_summary(stack: Stack, call_id: str) -> dict[str, Any] | None:
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.sessions() as session:
            return insights_repo.insights_summary(session, call_id)
    finally:
        db.dispose()


def instant(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def assert_signed(request: Received, event: dict[str, Any], call_id: str) -> None:
    assert verify_signature(
        WEBHOOK_SECRET, request.headers["X-Dialq-Signature"], request.body, now=time.time()
    )
    assert request.headers["X-Dialq-Event-Id"] == event["event_id"]
    assert event["event_id"] == event_id(call_id, event["sequence"])
    assert event["call_id"] == call_id


def test_a_call_reports_queued_dialing_connected_in_sequence_order_with_valid_signatures(
    stack: Stack, receiver: Receiver
) -> None:
    # given a worker, and a call whose callback URL carries a token in its query
    stack.start_worker()
    handle = enqueue_call(
        {"phone_number": NUMBER, "callback_url": f"{receiver.url}/hooks?token=t-1"},
        settings=stack.settings,
    )
    # when the call connects
    call = stack.wait_for(handle.id, {"connected"})
    received = receiver.wait_for(3)
    # then its first three events arrive in order, once each, signed, with stable ids
    events = bodies(received)
    assert [(e["sequence"], e["type"]) for e in events[:3]] == [
        (1, "call.queued"),
        (2, "call.dialing"),
        (3, "call.connected"),
    ]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    for request, event in zip(received, events, strict=True):
        assert request.path == "/hooks?token=t-1"
        assert verify_signature(
            WEBHOOK_SECRET, request.headers["X-Dialq-Signature"], request.body, now=time.time()
        )
        assert not verify_signature("wrong", request.headers["X-Dialq-Signature"], request.body, 0)
        assert request.headers["X-Dialq-Event-Id"] == event["event_id"]
        assert event["event_id"] == event_id(handle.id, event["sequence"])
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"].startswith("dialq-webhooks/")
        assert event["call_id"] == handle.id
        assert b"4155550110" not in request.body
    assert events[2]["conversation_id"] == call["conversation_id"]
    assert events[2]["previous_state"] == "dialing"
    # and every POST is recorded, without the query string
    recorded = wait_for_attempts(stack, handle.id, 3)
    assert [(a["seq"], a["status"]) for a in recorded[:3]] == [(1, 200), (2, 200), (3, 200)]
    assert {a["url"] for a in recorded} == {f"{receiver.url}/hooks"}


def test_a_receiver_answering_500_twice_gets_the_event_again_then_the_rest_in_order(
    stack: Stack, receiver: Receiver
) -> None:
    # given a receiver that fails its first two requests
    receiver.script = [("status", 500), ("status", 500)]
    stack.start_worker()
    # when a call is placed
    handle = enqueue_call(
        {"phone_number": NUMBER, "callback_url": f"{receiver.url}/h"}, settings=stack.settings
    )
    stack.wait_for(handle.id, {"connected"})
    received = receiver.wait_for(5)
    # then the first event is retried until accepted, and nothing overtakes it
    sequences = [e["sequence"] for e in bodies(received)]
    assert sequences[:5] == [1, 1, 1, 2, 3]
    assert len({r.headers["X-Dialq-Event-Id"] for r in received[:3]}) == 1  # same event id
    # and each attempt is recorded, the failures with their status
    recorded = wait_for_attempts(stack, handle.id, 5)
    assert [(a["seq"], a["status"]) for a in recorded[:5]] == [
        (1, 500),
        (1, 500),
        (1, 200),
        (2, 200),
        (3, 200),
    ]
    assert recorded[0]["error"] == "http 500"
    assert cursor(stack, handle.id)["failures"] == 0


def test_a_callback_on_a_private_address_is_refused_and_recorded_and_the_call_still_connects(
    stack: Stack, receiver: Receiver
) -> None:
    # given a worker without the allow-list, so 127.0.0.1 is refused as it would be in production
    stack.env["DIALQ_WEBHOOK_ALLOW_NETWORKS"] = "[]"
    stack.start_worker()
    # when a call names a callback on the loopback address
    handle = enqueue_call(
        {"phone_number": NUMBER, "callback_url": f"{receiver.url}/h"}, settings=stack.settings
    )
    # then the call connects all the same
    stack.wait_for(handle.id, {"connected"})
    recorded = wait_for_attempts(stack, handle.id, 1)
    time.sleep(1.0)  # later events must not try again
    # and the receiver was never contacted; one refusal is recorded and the stream stopped
    assert receiver.received() == []
    recorded = attempts(stack, handle.id)
    assert [(a["seq"], a["status"], a["error"]) for a in recorded] == [
        (1, None, "refused: loopback address")
    ]
    assert cursor(stack, handle.id)["gave_up_at"] is not None
    assert cursor(stack, handle.id)["delivered_seq"] == 0


def test_a_receiver_that_hangs_does_not_delay_the_next_call(
    stack: Stack, receiver: Receiver
) -> None:
    # given a receiver that never answers in time, and a worker with only two threads
    receiver.hang_all_s = 15
    stack.start_worker(concurrency=2)
    first = enqueue_call(
        {"phone_number": NUMBER, "callback_url": f"{receiver.url}/h"}, settings=stack.settings
    )
    receiver.wait_for(1)  # a delivery is now stuck on the receiver
    # when a second call, without a callback, is placed
    began = time.monotonic()
    second = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(second.id, {"connected"}, timeout_s=5)
    elapsed_s = time.monotonic() - began
    # then it connected promptly, while the first call's receiver kept hanging
    assert elapsed_s < 3.0, f"second call took {elapsed_s:.1f}s"
    stack.wait_for(first.id, {"connected"}, timeout_s=5)
    recorded = wait_for_attempts(stack, first.id, 1)
    assert recorded[0]["status"] is None
    assert "timed out" in (recorded[0]["error"] or "")
    assert cursor(stack, first.id)["delivered_seq"] == 0


def test_a_call_that_runs_to_its_end_reports_completed_with_its_duration_then_its_insights(
    stack: Stack, receiver: Receiver
) -> None:
    # given calls that the far end hangs up after 1 s, insights ready as soon as a call ends,
    # and a worker
    stack.sandbox.control.configure(call_seconds=1.0)
    stack.env.update(FAST_INSIGHTS)
    stack.start_worker()
    # when a call with a callback runs to its end and its insights are harvested
    handle = enqueue_call(
        {"phone_number": NUMBER, "callback_url": f"{receiver.url}/h"}, settings=stack.settings
    )
    call = stack.wait_for(handle.id, {"completed"})
    received = receiver.wait_for(5, timeout_s=30)
    time.sleep(0.5)  # anything sent twice or after the insights would arrive by now
    received = receiver.received()
    # then the receiver got the whole life of the call once, in sequence order, each signed
    events = bodies(received)
    assert [(e["sequence"], e["type"], e["state"]) for e in events] == [
        (1, "call.queued", "queued"),
        (2, "call.dialing", "dialing"),
        (3, "call.connected", "connected"),
        (4, "call.completed", "completed"),
        (5, "call.insights", "completed"),
    ]
    for request, event in zip(received, events, strict=True):
        assert_signed(request, event, handle.id)
    completed, insights = events[3], events[4]
    # and the completed event says how the call ended: when, and how long it was live
    assert completed["previous_state"] == "connected"
    assert completed["reason"] == "ended"
    assert completed["conversation_id"] == call["conversation_id"]
    far_end = next(
        c for c in stack.sandbox.control.calls() if c["connectionId"] == call["connection_id"]
    )
    assert instant(completed["ended_at"]) == pytest.approx(far_end["ended_at"], abs=0.001)
    assert instant(completed["ended_at"]) == pytest.approx(instant(call["ended_at"]), abs=1e-6)
    lived_s = instant(call["ended_at"]) - instant(call["connected_at"])
    assert completed["duration_s"] == pytest.approx(lived_s, abs=0.001)
    assert 0 < completed["duration_s"] <= 1.0 + 0.001  # the far end hung up 1 s after the start
    assert "insights" not in completed
    # and the insights event carries the stored summary: ready, with counts and texts
    assert insights["detail"] == "insights: ready"
    assert insights["previous_state"] == "completed"
    assert (insights["ended_at"], insights["duration_s"]) == (
        completed["ended_at"],
        completed["duration_s"],
    )
    summary = insights["insights"]
    assert summary == stored_insights_summary(stack, handle.id)
    assert summary["status"] == "ready"
    assert summary["reason"] is None
    assert set(summary["counts"]) == set(insights_repo.COUNTED)
    assert all(count > 0 for count in summary["counts"].values()), summary["counts"]
    assert summary["summary"]
    assert all(isinstance(text, str) and text for text in summary["summary"])
    assert len(summary["action_items"]) == summary["counts"]["action_items"]
    assert b"4155550110" not in received[4].body
