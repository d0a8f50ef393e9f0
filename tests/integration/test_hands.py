"""A message in the hands of a worker that dies is given back within seconds, exactly that
message; one a live worker holds, or one merely queued, never is."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from typing import Any

import pytest
import redis

from dialq import hands, routing
from dialq.worker import CeleryPublisher, create_app
from tests.stack import Stack

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
# Far enough ahead that every message counts as old: the age rule is tested on its own below.
LATER_S = 3600.0


def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _unacked(client: redis.Redis) -> list[str]:
    return [str(t, "utf-8") for t in client.zrange(hands.UNACKED_INDEX, 0, -1)]  # type: ignore[arg-type]


def _held(client: redis.Redis) -> set[str]:
    return hands.held_by_live_workers(client)


def _kill(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)


def test_a_message_held_by_a_killed_worker_is_given_back_and_taken_by_the_next(
    stack: Stack,
) -> None:
    client = redis.Redis.from_url(stack.settings.broker_url)
    app = create_app(stack.settings)
    # given a worker holding a dial message it must keep for 50 s (a countdown)
    worker = stack.start_worker(concurrency=2)
    CeleryPublisher(app).publish(routing.DIAL, "c-held-by-the-dead", 50.0)
    (tag,) = _wait(lambda: _unacked(client), 10, "the worker to take the message")
    _wait(lambda: tag in _held(client), 10, "the worker to record it in hand")
    # then while the worker lives its message is not an orphan, however old
    assert hands.orphans(client, now_s=time.time() + LATER_S) == []
    # when the worker is killed without a goodbye
    _kill(worker)
    # then within the record's TTL its message is an orphan, and only it
    orphans = _wait(
        lambda: hands.orphans(client, now_s=time.time() + LATER_S), hands.TTL_S + 5, "orphan"
    )
    assert orphans == [tag]
    # and when given back it is on its queue again, no longer unacked, marked redelivered
    assert hands.give_back_orphans(app, client, min_age_s=0) == 1
    assert _unacked(client) == []
    (raw,) = client.lrange(routing.QUEUE_DIAL, 0, -1)
    payload = json.loads(raw)
    assert payload["properties"]["delivery_tag"] == tag
    assert payload["headers"]["redelivered"] is True
    # and the next worker takes it and holds it in turn
    stack.start_worker(concurrency=2)
    _wait(lambda: _unacked(client) == [tag] and tag in _held(client), 15, "the next worker")
    assert hands.orphans(client, now_s=time.time() + LATER_S) == []


def test_a_message_merely_queued_or_too_young_is_never_given_back(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.settings.broker_url)
    app = create_app(stack.settings)
    # given a message on its queue that no worker has taken
    CeleryPublisher(app).publish(routing.WATCH_CALL, "c-just-queued")
    assert client.llen(routing.QUEUE_LIFECYCLE) == 1
    # when the watchdog looks for orphans, however late
    given = hands.give_back_orphans(app, client, min_age_s=-LATER_S)
    # then nothing is given back and the queue holds it once
    assert given == 0
    assert client.llen(routing.QUEUE_LIFECYCLE) == 1
    # given a message taken by a worker that records nothing (it died at once) just now
    worker = stack.start_worker(concurrency=1)
    CeleryPublisher(app).publish(routing.DIAL, "c-young", 50.0)
    (tag,) = _wait(lambda: _unacked(client), 10, "the worker to take the message")
    _kill(worker)
    for key in client.keys(f"{routing.REDIS_PREFIX}hands:*"):
        client.delete(key)
    # then it is not an orphan before MIN_AGE_S (a live worker may not have written it yet)
    assert hands.orphans(client, now_s=time.time()) == []
    # and it is one after
    assert hands.orphans(client, now_s=time.time() + hands.MIN_AGE_S + 1) == [tag]


def test_a_message_whose_task_ran_leaves_the_workers_hands(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.settings.broker_url)
    app = create_app(stack.settings)
    # given a worker and a watch for a call that does not exist (the task ends at once)
    stack.start_worker(concurrency=1)
    CeleryPublisher(app).publish(routing.DIAL, "c-keeps-the-record-alive", 50.0)
    (held_tag,) = _wait(lambda: _unacked(client), 10, "the first message")
    CeleryPublisher(app).publish(routing.WATCH_CALL, "c-no-such-call")
    # when the task has run and its message was acked
    _wait(lambda: _unacked(client) == [held_tag], 15, "the watch to be acked")
    # then the worker's record holds only the message it still has
    _wait(lambda: _held(client) == {held_tag}, hands.BEAT_S * 3, "the record to drop the tag")
