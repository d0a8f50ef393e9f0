"""The webhook body and the retry backoff: pure functions, no servers."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from dialq.store.tables import Call, Event
from dialq.webhooks.delivery import webhook_backoff_s
from dialq.webhooks.payload import build_payload, encode, event_id

T0 = datetime(2026, 11, 24, 14, 0, 0, 250000, tzinfo=UTC)


def a_call(**overrides: object) -> Call:
    fields: dict[str, object] = {
        "id": "0b6f0c1e-0000-4000-8000-000000000001",
        "status": "connected",
        "account": "default",
        "phone_number": "+14155550123",
        "sip_uri": None,
        "request": {"phone_number": "+14155550123"},
        "conversation_id": "conv-1",
        "connection_id": "conn-1",
        "reason": None,
    }
    fields.update(overrides)
    return Call(**fields)


def an_event(seq: int, to: str, frm: str | None, detail: str | None = None) -> Event:
    return Event(
        call_id="0b6f0c1e-0000-4000-8000-000000000001",
        seq=seq,
        at=T0,
        from_status=frm,
        to_status=to,
        detail=detail,
    )


def test_a_state_change_becomes_the_documented_payload() -> None:
    payload = build_payload(a_call(), an_event(3, "connected", "dialing", "conversation conv-1"))
    assert payload == {
        "event_id": event_id("0b6f0c1e-0000-4000-8000-000000000001", 3),
        "type": "call.connected",
        "call_id": "0b6f0c1e-0000-4000-8000-000000000001",
        "sequence": 3,
        "state": "connected",
        "previous_state": "dialing",
        "at": "2026-11-24T14:00:00.250000Z",
        "detail": "conversation conv-1",
        "conversation_id": "conv-1",
        "connection_id": "conn-1",
        "reason": None,
        "account": "default",
        "ended_at": None,
        "duration_s": None,
    }


def test_a_completed_event_carries_when_the_call_ended_and_how_long_it_was_live() -> None:
    # given a call connected at T0 and ended 95.5 s later
    ended = a_call(
        status="completed",
        reason="ended",
        connected_at=T0,
        ended_at=T0 + timedelta(seconds=95.5),
    )
    # when its completed event is built
    payload = build_payload(ended, an_event(4, "completed", "connected", "ended"))
    # then the end and the live duration are in it
    assert payload["type"] == "call.completed"
    assert payload["ended_at"] == "2026-11-24T14:01:35.750000Z"
    assert payload["duration_s"] == 95.5


def test_the_phone_number_and_sip_uri_are_never_in_the_body() -> None:
    call = a_call(sip_uri="sip:bridge@example.com")
    body = encode(build_payload(call, an_event(1, "queued", None)))
    assert b"4155550123" not in body
    assert b"sip:" not in body


def test_a_previous_state_not_recorded_on_the_event_is_taken_from_the_argument() -> None:
    event = an_event(3, "connected", None)
    assert build_payload(a_call(), event, previous_state="dialing")["previous_state"] == "dialing"
    recorded = an_event(3, "connected", "dialing")
    assert build_payload(a_call(), recorded, previous_state="x")["previous_state"] == "dialing"
    assert build_payload(a_call(), an_event(1, "queued", None))["previous_state"] is None


def test_the_event_id_is_stable_across_retries_and_differs_per_sequence() -> None:
    assert event_id("c", 1) == event_id("c", 1)
    assert len({event_id("c", 1), event_id("c", 2), event_id("d", 1)}) == 3


def test_an_insights_event_carries_the_summary_it_is_given() -> None:
    summary = {"status": "ready", "counts": {"topics": 2}, "summary": ["Agreed on dates."]}
    event = an_event(6, "completed", "completed", "insights: ready")
    payload = build_payload(a_call(status="completed"), event, summary)
    assert payload["type"] == "call.insights"
    assert payload["insights"] == summary


def test_an_insights_event_without_a_stored_summary_says_null_and_others_have_no_key() -> None:
    insights_event = an_event(6, "completed", "completed", "insights: unavailable: deadline")
    assert build_payload(a_call(), insights_event)["insights"] is None
    assert "insights" not in build_payload(a_call(), an_event(5, "completed", "connected"))


def test_the_body_is_compact_utf8_json() -> None:
    payload = build_payload(a_call(reason="rejected: numéro"), an_event(2, "failed", "dialing"))
    body = encode(payload)
    assert body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert "numéro".encode() in body  # UTF-8, not \u escapes
    assert json.loads(body.decode("utf-8")) == payload


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.value


@pytest.mark.parametrize(
    ("failures", "low", "high"),
    [(1, 2.5, 5.0), (2, 5.0, 10.0), (3, 10.0, 20.0), (8, 320.0, 640.0), (12, 1800.0, 3600.0)],
)
def test_backoff_grows_exponentially_with_equal_jitter_and_a_cap(
    failures: int, low: float, high: float
) -> None:
    args = (5.0, 3600.0)
    assert webhook_backoff_s(failures, FixedRandom(0.0), *args) == low
    assert webhook_backoff_s(failures, FixedRandom(1.0), *args) == high


def test_backoff_never_exceeds_the_cap_even_for_huge_failure_counts() -> None:
    assert webhook_backoff_s(10_000, FixedRandom(1.0), 5.0, 3600.0) == 3600.0
    with pytest.raises(ValueError, match="from 1"):
        webhook_backoff_s(0, FixedRandom(0.5), 5.0, 60.0)


def test_a_day_of_retries_with_the_defaults_stays_a_few_dozen_attempts() -> None:
    rng, waited, attempts = random.Random(7), timedelta(0), 0
    while waited < timedelta(days=1):
        attempts += 1
        waited += timedelta(seconds=webhook_backoff_s(attempts, rng, 5.0, 3600.0))
    assert 25 <= attempts <= 50
