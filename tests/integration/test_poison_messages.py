"""Poison messages: anything a Celery client can put on dialq's queues is set aside, and an
unsupervised worker keeps placing real calls in between."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from dialq import routing
from dialq.api import enqueue_call
from tests.stack import Stack

NUMBER = "+14155550123"
SECRET_NUMBER = "+14155550999"  # sent inside poisoned bodies: must never reach a log line


def publish_raw(
    broker_url: str, queue: str, body: Any, headers: dict[str, Any], *, raw: bytes | None = None
) -> None:
    """One message exactly as a careless or hostile client would build it."""
    payload = raw if raw is not None else json.dumps(body).encode()
    with Connection(broker_url) as connection:
        connection.Producer().publish(
            payload,
            exchange=Exchange(queue, type="direct"),
            routing_key=queue,
            declare=[Queue(queue, Exchange(queue, type="direct"), routing_key=queue)],
            content_type="application/json",
            content_encoding="utf-8",
            headers=headers,
        )


def task_headers(task: str) -> dict[str, Any]:
    return {"task": task, "id": str(uuid.uuid4()), "lang": "py"}


POISON: list[tuple[str, str, Any, bytes | None]] = [
    # (queue, task, body, raw bytes instead of the JSON of body)
    (routing.QUEUE_DIAL, routing.DIAL, {"not": "a list"}, None),
    (routing.QUEUE_DIAL, routing.DIAL, [[], {}], None),
    (routing.QUEUE_DIAL, routing.DIAL, None, None),
    (routing.QUEUE_DIAL, routing.DIAL, 5, None),
    (routing.QUEUE_DIAL, routing.DIAL, "str", None),
    (routing.QUEUE_DIAL, routing.DIAL, [[], {}, "x"], None),
    (routing.QUEUE_DIAL, routing.DIAL, [[123], {}, {}], None),
    (routing.QUEUE_DIAL, routing.DIAL, [["a", "b"], {}, {}], None),
    (routing.QUEUE_DIAL, routing.DIAL, [["a"], {}, {"callbacks": [{"task": "x"}]}], None),
    (routing.QUEUE_LIFECYCLE, routing.WATCH_CALL, [[], {"call_id": "x"}, {}], None),
    (routing.QUEUE_SWEEP, routing.SWEEP, [["surprise"], {}, {}], None),
    (routing.QUEUE_DIAL, routing.DIAL, None, b"{not json"),
    (routing.QUEUE_DIAL, routing.PLACE_CALL, None, b"x" * 70_000),
    # a misspelt task name, carrying a phone number
    (
        routing.QUEUE_DIAL,
        "dialq.place_cal",
        [[], {"request": {"phone_number": SECRET_NUMBER}}, {}],
        None,
    ),
]


def test_no_malformed_message_stops_an_unsupervised_worker_and_each_is_set_aside(
    stack: Stack,
) -> None:
    # given one worker, not supervised: if it exits, nothing brings it back
    worker = stack.start_worker(concurrency=4)
    broker = stack.env["DIALQ_BROKER_URL"]
    handles = []
    # when poison of every kind is sent, interleaved with real calls
    for n, (queue, task, body, raw) in enumerate(POISON):
        publish_raw(broker, queue, body, task_headers(task), raw=raw)
        if n % 4 == 0:
            handles.append(enqueue_call({"phone_number": NUMBER}, settings=stack.settings))
    publish_raw(broker, routing.QUEUE_DIAL, [["x"], {}, {}], {"id": "no-task-header"})
    # then every real call connects, once
    for handle in handles:
        stack.wait_for(handle.id, {"connected"})
        assert len(stack.starts_for(handle.id)) == 1
    # and the worker is still running, with nothing left on its queues to choke on
    time.sleep(1.0)
    assert worker.poll() is None, stack.worker_logs()[-3000:]
    client = stack_redis(stack)
    for queue in routing.ALL_QUEUES:
        assert client.llen(queue) == 0
    # and each poison message is listed by `dialq poison`, with a reason and no body
    listed = json.loads(stack.cli("poison", "--json", "--limit", "100").stdout)
    assert len(listed) == len(POISON) + 1
    assert {r["kind"] for r in listed} >= {
        "not-a-task-body",
        "bad-embed",
        "bad-arguments",
        "callbacks",
        "unreadable",
        "too-large",
        "unknown-task",
        "not-a-task",
    }
    assert all("body" not in record and record["reason"] for record in listed)
    # and no log line carries the number a poisoned body held
    assert SECRET_NUMBER not in stack.worker_logs()
    assert SECRET_NUMBER[-4:] + '"' not in stack.worker_logs()


def stack_redis(stack: Stack) -> Any:
    import redis

    return redis.Redis.from_url(stack.env["DIALQ_BROKER_URL"])
