"""At scale one `dialq.watch_call` message looks at a page of live calls, not one.

A real worker watches twelve live calls on the sandbox with pages of four (no beat, so no
watchdog repairs a chain lost along the way); the sandbox's request log counts each call's
conversation GETs and the worker's log the messages that took a look.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from dialq.api import enqueue_call
from tests.stack import Stack

CALLS = 12
PAGE = 4
INTERVAL_S = 1.0
WINDOW_S = 6.0
WATCHING = re.compile(r"dialq\.watch_call\[[^\]]+\] succeeded in [0-9.e-]+s: 'watching'")


def gets_by_conversation(stack: Stack, since: int) -> tuple[Counter[str], int]:
    """Conversation GETs after request number `since`, per conversation; the newest number."""
    entries = stack.sandbox.control.requests(since=since)
    gets = Counter(
        str(e["path"]).rsplit("/", 1)[-1]
        for e in entries
        if e.get("method") == "GET" and str(e.get("path", "")).startswith("/v1/conversations/")
    )
    return gets, max([since, *(int(e["seq"]) for e in entries)])


@pytest.mark.timeout(120)
def test_pages_look_at_every_live_call_each_interval_with_a_fraction_of_the_messages(
    stack: Stack,
) -> None:
    # given twelve live calls watched every second by a real worker, in pages of four
    stack.env["DIALQ_WATCH_INTERVAL_S"] = str(INTERVAL_S)
    stack.env["DIALQ_WATCH_PAGE"] = str(PAGE)
    stack.start_worker()
    handles = [
        enqueue_call({"phone_number": f"+1415555{1000 + i}"}, settings=stack.settings)
        for i in range(CALLS)
    ]
    calls = [stack.wait_for(h.id, {"connected"}) for h in handles]
    time.sleep(3 * INTERVAL_S)  # each call's own chain of messages merges into pages
    # when the looks are counted over six intervals
    _, start = gets_by_conversation(stack, 0)
    messages_before = len(WATCHING.findall(stack.worker_logs()))
    time.sleep(WINDOW_S)
    gets, _ = gets_by_conversation(stack, start)
    messages = len(WATCHING.findall(stack.worker_logs())) - messages_before
    looks = sum(gets.values())
    print(f"{looks} looks at {CALLS} calls in {WINDOW_S:.0f} s by {messages} messages")
    # then every call was looked at about once an interval (never starved, never more than
    # twice an interval), and the messages that took looks were a fraction of the looks
    intervals = WINDOW_S / INTERVAL_S
    for call in calls:
        assert intervals - 2 <= gets[call["conversation_id"]] <= 2 * intervals + 1
    assert messages <= looks / 2
    # and when every far end hangs up, every call completes within a few intervals: no call
    # was left without a message to look at it (nothing else would; no watchdog runs here)
    for call in calls:
        stack.sandbox.control.end_call(call["connection_id"])
    for handle in handles:
        done = stack.wait_for(handle.id, {"completed"}, timeout_s=3 * INTERVAL_S + 2)
        assert done["reason"] == "ended"
    time.sleep(2 * INTERVAL_S)
    _, start = gets_by_conversation(stack, 0)
    time.sleep(2 * INTERVAL_S)
    assert gets_by_conversation(stack, start)[0] == Counter()
