"""Duplicate `dialq.watch_call` messages never multiply polling: one watch chain per live call.

A real worker watches a live call on the sandbox; extra messages are sent by name, as a
redelivery or any Celery client would; the sandbox's request log counts conversation GETs.
"""

from __future__ import annotations

import time

import pytest
from celery import Celery

from dialq import routing
from dialq.api import enqueue_call
from tests.stack import Stack

NUMBER = "+14155550177"
INTERVAL_S = 1.0
WINDOW_S = 8.0
DUPLICATES = 20


def conversation_gets(stack: Stack, conversation_id: str, since: int) -> tuple[int, int]:
    """(GETs of the conversation after request number `since`, the newest request number)."""
    entries = stack.sandbox.control.requests(since=since)
    path = f"/v1/conversations/{conversation_id}"
    gets = [e for e in entries if e.get("method") == "GET" and e.get("path") == path]
    return len(gets), max([since, *(int(e["seq"]) for e in entries)])


def gets_over(stack: Stack, conversation_id: str, seconds: float) -> int:
    _, start = conversation_gets(stack, conversation_id, 0)
    time.sleep(seconds)
    count, _ = conversation_gets(stack, conversation_id, start)
    return count


@pytest.mark.timeout(90)
def test_twenty_duplicate_watch_messages_poll_at_one_watchers_rate_and_the_call_completes_once(
    stack: Stack,
) -> None:
    # given a live call, watched every second by a real worker
    stack.env["DIALQ_WATCH_INTERVAL_S"] = str(INTERVAL_S)
    stack.start_worker()
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    call = stack.wait_for(handle.id, {"connected"})
    conversation = call["conversation_id"]
    alone = gets_over(stack, conversation, WINDOW_S)
    # when 20 duplicate watch messages for it arrive at once
    client = Celery(broker=stack.env["DIALQ_BROKER_URL"])
    for _ in range(DUPLICATES):
        client.send_task(routing.WATCH_CALL, args=[handle.id], queue=routing.QUEUE_LIFECYCLE)
    with_duplicates = gets_over(stack, conversation, WINDOW_S)
    print(f"conversation GETs per {WINDOW_S:.0f} s: alone {alone}, after 20 more {with_duplicates}")
    # then polling stays at one watcher's rate (one look per interval, one more at most when a
    # duplicate takes a look over), and the duplicates ended: not one started a chain
    one_watcher = WINDOW_S / INTERVAL_S
    assert alone <= one_watcher + 1
    assert with_duplicates <= one_watcher + 2
    assert gets_over(stack, conversation, WINDOW_S / 2) <= one_watcher / 2 + 1
    assert "duplicate" in stack.worker_logs()
    # and when the far end hangs up, the call completes once and nobody looks at it again
    stack.sandbox.control.end_call(call["connection_id"])
    done = stack.wait_for(handle.id, {"completed"}, timeout_s=10)
    moves = [(e["from"], e["to"]) for e in done["events"] if e["from"] != e["to"]]
    assert moves[-1] == ("connected", "completed")
    assert [to for _, to in moves].count("completed") == 1
    assert done["reason"] == "ended"
    time.sleep(2 * INTERVAL_S)
    assert gets_over(stack, conversation, 2 * INTERVAL_S) == 0
