"""A real worker refusing hostile `dialq.place_call` messages sent by name over the broker."""

from __future__ import annotations

import time
from typing import Any

import redis
from celery import Celery
from hypothesis import given, settings
from hypothesis import strategies as st

from dialq import routing
from dialq.store import Database
from dialq.store import calls_repo as repo
from tests.property.profiles import IO
from tests.property.strategies import Message, call_payloads, json_payloads, messages
from tests.stack import Stack

REJECTED = "rejected dialq.place_call payload: "
# Bodies over the size limit never reach the task: the worker sets them aside (dialq.poison).
SET_ASIDE = "set aside a message no task can run: task dialq.place_call"
BATCH = 8
# Each example is a round trip through a real worker: a few batches prove the path.
WORKER_EXAMPLES = settings(IO, max_examples=5)


def invalid_payloads() -> st.SearchStrategy[Any]:
    """Payloads with no target at all: hostile extras, or not an object. All must be refused."""
    no_target = call_payloads().map(
        lambda p: {k: v for k, v in p.items() if k not in ("phone_number", "sip_uri")}
    )
    return st.one_of(no_target, json_payloads()).filter(
        lambda p: not (isinstance(p, dict) and ({"phone_number", "sip_uri"} & set(p)))
    )


def _call_count(db: Database) -> int:
    with db.sessions() as session:
        return len(repo.list_calls(session, limit=100_000))


def _wait_for_rejections(stack: Stack, count: int, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        logs = stack.worker_logs()
        if logs.count(REJECTED) + logs.count(SET_ASIDE) >= count:
            return logs
        assert time.monotonic() < deadline, f"{count} rejections never logged:\n{logs[-3000:]}"
        time.sleep(0.1)


@WORKER_EXAMPLES
@given(batch=st.lists(messages(invalid_payloads()), min_size=BATCH, max_size=BATCH))
def test_a_real_worker_refuses_bad_messages_by_name_with_no_row_message_or_traceback(
    worker_stack: Stack, batch: list[Message]
) -> None:
    # given a worker, and a plain Celery client that knows only the task's name
    stack = worker_stack
    if not stack.workers:
        stack.start_worker(concurrency=2)
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    client = redis.Redis.from_url(stack.env["DIALQ_BROKER_URL"])
    sender = Celery(broker=stack.env["DIALQ_BROKER_URL"])
    try:
        before = stack.worker_logs()
        seen = before.count(REJECTED) + before.count(SET_ASIDE)
        calls = _call_count(db)
        # when each message is sent by name, as JSON
        for args, kwargs in batch:
            sender.send_task(routing.PLACE_CALL, args=args, kwargs=kwargs, queue=routing.QUEUE_DIAL)
        logs = _wait_for_rejections(stack, seen + BATCH)
        # then each is refused naming a field, with nothing stored or published, no traceback
        assert _call_count(db) == calls
        assert client.llen(routing.QUEUE_DIAL) == 0
        assert "Traceback" not in logs
        assert "raised unexpected" not in logs
        rejections = [line.split(REJECTED, 1)[1] for line in logs.splitlines() if REJECTED in line]
        assert all(": " in rejection for rejection in rejections), rejections
    finally:
        sender.close()
        client.close()
        db.dispose()
