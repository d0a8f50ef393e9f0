"""The task events Flower reads reach it in batches: every dial's received, started and
succeeded events arrive, in far fewer publishes than events (dialq.consumer)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis

from dialq import routing
from dialq.api import enqueue_call
from tests.stack import Stack

CALLS = 30
START = {"path": "/v1/endpoint:connect", "operation": "start"}
NUMBER = "+14155550123"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The events are the worker's, whatever its database: one is enough here."""
    return sqlite_url


class EventTap:
    """Every message on the worker's event exchange, as published (one PUBLISH each)."""

    def __init__(self, url: str) -> None:
        # Kept: a client that is collected closes its pool, the subscription's connection too.
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.pubsub.psubscribe("*celeryev*")
        self.task_publishes = 0
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self._read_all()
        except BaseException as error:  # re-raised by close(), in the test's thread
            self.error = error

    def _read_all(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if message is None:
                continue
            envelope = json.loads(message["data"])
            body = envelope["body"]
            if envelope.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            decoded = json.loads(body)
            events = decoded if isinstance(decoded, list) else [decoded]
            # Worker heartbeats go one to a publish, and so does each producer's task-sent:
            # what is batched is the worker's task events.
            self.task_publishes += any(_by_worker(event) for event in events)
            self.events.extend(events)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.pubsub.close()
        self.client.close()
        if self.error is not None:
            raise self.error


def test_every_dial_event_reaches_monitors_in_batches(stack: Stack) -> None:
    # Given a worker, and a monitor listening to its events
    stack.start_worker(concurrency=8)
    tap = EventTap(stack.env["DIALQ_BROKER_URL"])
    try:
        # When a burst of calls is dialed
        handles = [
            enqueue_call({"phone_number": NUMBER}, settings=stack.settings) for _ in range(CALLS)
        ]
        for handle in handles:
            stack.wait_for(handle.id, {"connected"})
        deadline = time.monotonic() + 10
        while _dial_events(tap)["task-succeeded"] < CALLS and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        tap.close()
    # Then each dial was seen received, started and succeeded
    seen = _dial_events(tap)
    assert seen["task-received"] == seen["task-started"] == seen["task-succeeded"] == CALLS
    # and the events came several to a publish, not one or two each
    task_events = [event for event in tap.events if _by_worker(event)]
    assert tap.task_publishes * 4 <= len(task_events), (tap.task_publishes, len(task_events))


def test_a_dial_that_ends_during_a_warm_shutdown_is_still_seen_succeeding(stack: Stack) -> None:
    # Given a worker whose dial is in flight (the API answers its start after 2 s, well
    # inside the read timeout, so the outcome is known however loaded the machine is)
    stack.env["DIALQ_HTTP_READ_TIMEOUT_S"] = "8"
    stack.sandbox.control.script(
        [{"match": START, "times": 1, "action": {"type": "slow", "seconds": 2}}]
    )
    worker = stack.start_worker(concurrency=2)
    tap = EventTap(stack.env["DIALQ_BROKER_URL"])
    try:
        handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
        stack.wait_for(handle.id, {"dialing"})
        # When the worker is told to stop (SIGTERM: it finishes what it runs, then exits)
        worker.terminate()
        assert worker.wait(timeout=30) == 0
        assert stack.call(handle.id)["status"] == "connected"
        deadline = time.monotonic() + 5
        while not _dial_events(tap)["task-succeeded"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        tap.close()
    # Then monitors saw the dial succeed, not left STARTED for good
    assert _dial_events(tap)["task-succeeded"] == 1


def _dial_events(tap: EventTap) -> Counter[str]:
    dial_ids = {
        event["uuid"]
        for event in list(tap.events)
        if event["type"] == "task-received" and event.get("name") == routing.DIAL
    }
    return Counter(event["type"] for event in list(tap.events) if event.get("uuid") in dial_ids)


def _by_worker(event: dict[str, Any]) -> bool:
    return str(event["type"]).startswith("task-") and event["type"] != "task-sent"
