"""Idempotency keys: the same key and request is one call; the same key for another request is
refused naming `idempotency_key`; keys of schedule occurrences are out of producers' reach.

Real Redis, SQLite and PostgreSQL, a real worker for the by-name intake.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from celery import Celery
from pydantic import ValidationError
from sqlalchemy import insert, update

from dialq import routing
from dialq.api import enqueue_call, producer_runtime
from dialq.calls.enqueue import request_fingerprint
from dialq.calls.request import CallRequest, InvalidCallRequest, parse_call_request
from dialq.schedules.occurrences import occurrence_key
from dialq.store import Call, Database, calls_repo
from dialq.store.db import make_engine
from tests.integration.test_history_queries import upgrade_to_all_heads_but
from tests.schedule_helpers import utc
from tests.schedule_world import CALL, World, schedule_world
from tests.servers import private_pg_schema
from tests.stack import Stack

NUMBER = "+14155550110"
FINGERPRINTS = "0008_request_fingerprint"


def calls_in(stack: Stack) -> list[Call]:
    with producer_runtime(stack.settings).db.sessions() as session:
        return calls_repo.list_calls(session, limit=100)


def dial_messages(stack: Stack) -> int:
    return int(redis.Redis.from_url(stack.env["DIALQ_BROKER_URL"]).llen(routing.QUEUE_DIAL))


def test_a_key_reused_for_a_different_request_is_refused_naming_it_with_nothing_new(
    stack: Stack,
) -> None:
    # given a call made with a key (no worker: its dial message stays in the queue)
    first = enqueue_call(
        {"phone_number": NUMBER, "idempotency_key": "crm-7"}, settings=stack.settings
    )
    messages = dial_messages(stack)
    # when the same key comes with another number, then with another session name
    for other in ({"phone_number": "+14155550111"}, {"phone_number": NUMBER, "priority": 9}):
        with pytest.raises(InvalidCallRequest) as refused:
            enqueue_call({**other, "idempotency_key": "crm-7"}, settings=stack.settings)
        # then the error names the key (never the number), and nothing was written or published
        assert [error.field for error in refused.value.errors] == ["idempotency_key"]
        assert "different request" in str(refused.value)
        assert "555" not in str(refused.value)
    assert [call.id for call in calls_in(stack)] == [first.id]
    assert dial_messages(stack) == messages


def test_the_same_request_written_differently_with_its_key_is_the_same_call(
    stack: Stack,
) -> None:
    # given a call made with a key
    first = enqueue_call(
        {"phone_number": NUMBER, "session_name": "Sync", "idempotency_key": "crm-8"},
        settings=stack.settings,
    )
    # when the same request comes again: the number formatted otherwise, defaults spelt out
    again = enqueue_call(
        {
            "idempotency_key": "crm-8",
            "session_name": " Sync ",
            "phone_number": "(415) 555-0110",
            "priority": 5,
            "account": "default",
            "languages": [],
        },
        settings=stack.settings,
    )
    # then it is the same call, and nothing new was made
    assert (again.id, again.created, first.created) == (first.id, False, True)
    assert len(calls_in(stack)) == 1


def test_a_call_recorded_before_fingerprints_is_compared_by_its_stored_request(
    stack: Stack,
) -> None:
    # given a call whose row predates migration 0008 (no fingerprint)
    first = enqueue_call(
        {"phone_number": NUMBER, "idempotency_key": "old-1"}, settings=stack.settings
    )
    with producer_runtime(stack.settings).db.transaction() as session:
        session.execute(update(Call).where(Call.id == first.id).values(request_fingerprint=None))
    # when its key comes again with the same request, then with another
    again = enqueue_call(
        {"phone_number": NUMBER, "idempotency_key": "old-1"}, settings=stack.settings
    )
    with pytest.raises(InvalidCallRequest, match="idempotency_key"):
        enqueue_call(
            {"phone_number": "+14155550112", "idempotency_key": "old-1"}, settings=stack.settings
        )
    # then the same request finds the call, and the other is refused
    assert (again.id, again.created) == (first.id, False)


def test_a_by_name_message_reusing_a_key_for_another_request_is_rejected_by_the_worker(
    stack: Stack,
) -> None:
    # given a call made with a key, and a worker
    first = enqueue_call(
        {"phone_number": NUMBER, "idempotency_key": "crm-9"}, settings=stack.settings
    )
    stack.start_worker()
    stack.wait_for(first.id, {"connected", "completed"})
    # when a Celery client sends the same key by name with another number
    client = Celery(broker=stack.env["DIALQ_BROKER_URL"])
    client.send_task(
        routing.PLACE_CALL,
        kwargs={"request": {"phone_number": "+14155550113", "idempotency_key": "crm-9"}},
        queue=routing.QUEUE_DIAL,
    )
    # then the worker rejects it naming the key, writes nothing, and dials one call in all
    deadline = time.monotonic() + 20
    while "idempotency_key: was already used" not in stack.worker_logs():
        assert time.monotonic() < deadline, stack.worker_logs()[-3000:]
        time.sleep(0.1)
    assert [call.id for call in calls_in(stack)] == [first.id]
    assert len([r for r in stack.sandbox.control.requests() if r.get("operation") == "start"]) == 1
    assert "4155550113" not in stack.worker_logs()


# -- schedule occurrences: a namespace of keys producers cannot write ----------------------


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with schedule_world(database_url) as built:
        yield built


def test_a_producer_cannot_take_the_key_of_a_schedules_next_occurrence(world: World) -> None:
    # given a schedule every 5 s, whose next occurrence's key a producer can compute
    schedule = world.schedules.upsert({"name": "pulse", "every": 5, "call": CALL})
    key = occurrence_key(schedule.id, utc("2026-11-24T13:59:55Z"))
    # when a producer sends a request with that key, as a mapping or as a CallRequest
    with pytest.raises(InvalidCallRequest) as refused:
        parse_call_request({"phone_number": "+14155550199", "idempotency_key": key})
    with pytest.raises(ValidationError, match="reserved"):
        CallRequest(phone_number="+14155550199", idempotency_key=key)
    # then it is refused naming the key; and the tick still places the occurrence under it
    assert [error.field for error in refused.value.errors] == ["idempotency_key"]
    assert "reserved" in str(refused.value)
    world.clock.now = utc("2026-11-24T13:59:52Z")
    world.dispatcher.tick()
    [call] = world.calls()
    assert call.idempotency_key == key
    assert call.phone_number == CALL["phone_number"]
    assert world.occurrences() == [("2026-11-24T13:59:55+00:00", "placed")]


def test_an_occurrences_stored_request_passes_the_dials_validation_again(world: World) -> None:
    # given an occurrence placed by a tick
    world.schedules.upsert({"name": "pulse", "every": 5, "call": CALL})
    world.clock.now = utc("2026-11-24T13:59:52Z")
    world.dispatcher.tick()
    [call] = world.calls()
    # when its stored request is validated again, as the dial does before the start request
    again = parse_call_request(call.request)
    # then it is valid (the reserved key lives in its column only) and has the same fingerprint
    assert "idempotency_key" not in call.request
    assert again.phone_number == CALL["phone_number"]
    assert call.request_fingerprint == request_fingerprint(call.request)


def test_producer_keys_outside_the_reserved_prefix_are_accepted() -> None:
    for key in ("schedules:1", "my-schedule:1", "celery-task:abc", "Schedule:1"):
        assert (
            parse_call_request({"phone_number": NUMBER, "idempotency_key": key}).idempotency_key
            == key
        )


# -- migration 0008 -----------------------------------------------------------------------


@pytest.fixture
def url_before_fingerprints(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database of the test's kind, at every migration but 0008."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'before.db'}"
        upgrade_to_all_heads_but(url, FINGERPRINTS)
        yield url
        return
    with private_pg_schema() as url:
        upgrade_to_all_heads_but(url, FINGERPRINTS)
        yield url


def test_migration_0008_strips_reserved_keys_from_requests_not_yet_dialed(
    url_before_fingerprints: str,
) -> None:
    # given calls written before 0008: an occurrence still queued, one completed, a producer's
    now = datetime.now(UTC)
    rows = [
        ("c-queued", "queued", "schedule:s1:2026-01-01T00:00:00Z"),
        ("c-done", "completed", "schedule:s1:2025-01-01T00:00:00Z"),
        ("c-producer", "queued", "crm-1"),
    ]
    engine = make_engine(url_before_fingerprints)
    try:
        with engine.begin() as connection:
            for call_id, status, key in rows:
                request = {"phone_number": NUMBER, "idempotency_key": key}
                connection.execute(
                    insert(Call).values(
                        id=call_id,
                        status=status,
                        account="default",
                        phone_number=NUMBER,
                        request=request,
                        priority=5,
                        max_duration_s=60,
                        idempotency_key=key,
                        deadline_at=now,
                        start_attempts=0,
                        failures=0,
                        capacity_waits=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
    finally:
        engine.dispose()
    # when the database is upgraded
    db = Database(url_before_fingerprints)
    try:
        db.upgrade()
        with db.sessions() as session:
            stored = {c.id: c for c in calls_repo.list_calls(session)}
    finally:
        db.dispose()
    # then the queued occurrence's request passes the dial's validation; nothing else changed
    assert "idempotency_key" not in stored["c-queued"].request
    parse_call_request(stored["c-queued"].request)
    assert stored["c-queued"].idempotency_key == "schedule:s1:2026-01-01T00:00:00Z"
    assert stored["c-done"].request["idempotency_key"] == "schedule:s1:2025-01-01T00:00:00Z"
    assert stored["c-producer"].request["idempotency_key"] == "crm-1"
    assert {c.request_fingerprint for c in stored.values()} == {None}
