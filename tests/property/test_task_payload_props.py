"""The by-name intake `dialq.place_call` under hostile messages, on a real Redis and database.

Any Celery client may send the task by name with any JSON. Each message either writes one
queued call and publishes its one dial message, or is rejected with the field named: no row, no
message, no other exception.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from hypothesis import example, given

# The tasks register with every app when their module is imported, as the worker imports it.
import dialq.tasks  # noqa: F401
from dialq import routing
from dialq.api import close_runtimes
from dialq.config import Settings
from dialq.store import Database
from dialq.store import calls_repo as repo
from dialq.worker import create_app, runtime_for
from tests.property.checks import field_root
from tests.property.profiles import IO
from tests.property.strategies import CALL_FIELDS, Message, json_payloads, messages
from tests.property.world import Snapshot, observed, settings_for, snapshot


@pytest.fixture
def intake(
    redis_url: str, emptied_afterwards: str, tmp_path: Path
) -> Iterator[tuple[Celery, Settings]]:
    """The Celery app a worker runs, wired to the test's Redis and database; no worker."""
    settings = settings_for(redis_url, emptied_afterwards, tmp_path)
    app = create_app(settings)
    try:
        yield app, settings
    finally:
        runtime_for(app).close()
        close_runtimes()


def run_place_call(app: Celery, message: Message) -> dict[str, Any]:
    """The task's own body, as the worker runs it for one delivery (a fresh task id)."""
    task = app.tasks[routing.PLACE_CALL]
    task.push_request(id=str(uuid.uuid4()))
    try:
        args, kwargs = message
        result: dict[str, Any] = task.run(*args, **kwargs)
        return result
    finally:
        task.pop_request()


def assert_rejected_cleanly(result: dict[str, Any], before: Snapshot, after: Snapshot) -> None:
    message = result["error"]
    assert message.isprintable()
    named = {field_root(part.split(": ", 1)[0]) for part in message.split("; ")}
    assert named & {*CALL_FIELDS, "request"} or "unknown field" in message, message
    assert after == before, "a rejected message changed the database or Redis"


def assert_one_call_and_its_message(
    db: Database, result: dict[str, Any], before: Snapshot, after: Snapshot
) -> None:
    with db.sessions() as session:
        call = repo.get_call(session, result["id"])
        assert call is not None
        published = 1 if call.dispatch_due_at is not None else 0
        assert call.status == "queued" == result["status"]
        assert call.request["idempotency_key"] == call.idempotency_key
        assert (call.phone_number is None) != (call.sip_uri is None)
    if result["created"]:
        assert after.rows["calls"] == before.rows["calls"] + 1
        assert after.rows["events"] == before.rows["events"] + 1
        assert after.dial_messages == before.dial_messages + published
    else:  # the producer's idempotency key named a call this run already made
        assert after == before


@IO
@given(message=messages(json_payloads()))
# Found by this property: a TypeError from the task's signature, now "request: is required".
@example(message=([], {}))
@example(message=([], {"requests": {"phone_number": "+14155550123"}}))
# Accepted, then a NUL in the stored URL failed the PostgreSQL insert: now refused.
@example(
    message=([], {"request": {"phone_number": "+14155550123", "callback_url": "http://h/\x00"}})
)
def test_any_by_name_message_makes_one_queued_call_and_message_or_changes_nothing(
    intake: tuple[Celery, Settings], message: Message
) -> None:
    app, settings = intake
    with observed(settings) as (db, client):
        # given the stores as they are
        before = snapshot(db, client)
        # when the intake task runs on any message a Celery client could send
        result = run_place_call(app, message)
        after = snapshot(db, client)
        # then it made one queued call with one dial message, or named a field and changed nothing
        if "error" in result:
            assert_rejected_cleanly(result, before, after)
        else:
            assert_one_call_and_its_message(db, result, before, after)
