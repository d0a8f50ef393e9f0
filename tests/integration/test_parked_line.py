"""While the account's API circuit is open its line is parked: waiting calls cost nothing, one
probe comes back per cooldown, and its success hands every free permit on at once."""

from __future__ import annotations

import time

import redis

import dialq
from dialq.capacity import Capacity, Verdict, waiting_score
from tests.stack import Stack

START = {"path": "/v1/endpoint:connect", "operation": "start"}
CALLS = 30


def ask(capacity: Capacity, call_id: str, n: int, *, probe: bool = False) -> Verdict:
    return capacity.acquire(
        "a", call_id, score=waiting_score(5, n), lease_s=60, probe=probe
    ).verdict


def test_a_paused_line_hands_out_no_permit_but_the_probe_takes_one_and_resume_hands_the_rest(
    redis_url: str,
) -> None:
    # given an account of 3 with one live call and two calls in line, then paused (API out)
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 3})
    for n in range(3):
        assert ask(capacity, f"live{n}", n) is Verdict.GRANTED
    ask(capacity, "w1", 10)
    ask(capacity, "w2", 11)
    capacity.pause("a", hold_s=60)
    # when two live calls end, the watchdog hands off, and a newcomer asks
    released = capacity.release("a", "live1") + capacity.release("a", "live2")
    # then nobody is woken: the line waits, newcomer included, behind the paused account
    assert released == []
    assert capacity.hand_off("a") == []
    assert ask(capacity, "new", 12) is Verdict.PAUSED
    assert capacity.head_of_line("a") == "w1"
    # and the probe (any call, out of turn) takes a free permit
    assert ask(capacity, "new", 12, probe=True) is Verdict.GRANTED
    # when the API answers again, the line is unparked: the one free permit left goes to its head
    assert capacity.resume("a") == ["w1"]
    assert not capacity.paused("a")
    assert capacity.holders("a") == sorted(["live0", "new", "w1"])


def test_a_paused_line_with_no_free_permit_keeps_even_the_probe_waiting(redis_url: str) -> None:
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 1})
    ask(capacity, "live", 1)
    capacity.pause("a", hold_s=60)
    assert ask(capacity, "probe", 2, probe=True) is Verdict.PAUSED
    assert capacity.head_of_line("a") == "probe"


def _deliveries(stack: Stack) -> int:
    return sum(
        1
        for line in stack.worker_logs().splitlines()
        if "Task dialq.dial[" in line and "received" in line
    )


def _park_a_backlog(stack: Stack, read_timeout_s: float) -> list[str]:
    """A circuit that opens after 3 outage failures, cooldowns of 0.5 s doubling to 2 s, an API
    answering every start 503, and CALLS calls waiting for it (no beat: no watchdog)."""
    stack.env.update(
        {
            "DIALQ_API_CIRCUIT_THRESHOLD": "3",
            "DIALQ_API_CIRCUIT_COOLDOWN_S": "0.5",
            "DIALQ_API_CIRCUIT_MAX_COOLDOWN_S": "2",
            "DIALQ_HTTP_READ_TIMEOUT_S": str(read_timeout_s),
        }
    )
    stack.sandbox.control.script(
        [{"match": START, "times": 100_000, "action": {"type": "status", "status": 503}}]
    )
    stack.start_worker()
    ids = [
        dialq.enqueue_call(
            {"phone_number": f"+1415555{index:04d}", "max_duration_s": 10},
            settings=stack.settings,
        ).id
        for index in range(CALLS)
    ]
    deadline = time.monotonic() + 60
    while not all(
        (c := stack.call(call_id))["status"] == "waiting" and c["reason"] == "API unavailable"
        for call_id in ids
    ):
        assert time.monotonic() < deadline, [stack.call(i)["status"] for i in ids]
        time.sleep(0.5)
    return ids


def test_a_backlog_waiting_for_the_api_costs_one_probe_per_cooldown_and_drains_at_once(
    stack: Stack,
) -> None:
    # given a backlog parked behind an open circuit (a read timeout long enough that a busy
    # machine never turns the probe's start into an unknown outcome)
    control = stack.sandbox.control
    ids = _park_a_backlog(stack, read_timeout_s=10)
    # when it waits 8 s...
    before, began = _deliveries(stack), time.monotonic()
    time.sleep(8.0)
    delivered = _deliveries(stack) - before
    window_s = time.monotonic() - began
    # then the waiting calls are parked (no timed look of their own): over 8 s with a 2 s
    # cooldown cap, the probes are the only deliveries (looking each call up per cooldown
    # would be 30 x 4 = 120)
    assert delivered <= window_s / 2 + 4, delivered
    parked = [stack.call(call_id) for call_id in ids]
    assert sum(c["not_before"] is None for c in parked) >= CALLS - 1
    # and when the API is back, the probe's success starts the whole backlog at once
    control.clear_faults()
    back = time.monotonic()
    for call_id in ids:
        stack.wait_for(call_id, {"connected", "completed"}, timeout_s=30)
    assert time.monotonic() - back < 10.0


def test_a_probe_whose_start_gets_no_answer_hands_the_probe_to_the_next_call_in_line(
    stack: Stack,
) -> None:
    # given a backlog parked behind an open circuit, start requests timing out after 4 s
    control = stack.sandbox.control
    ids = _park_a_backlog(stack, read_timeout_s=4)
    # when the API answers again, but the next start (the probe's) hangs past the timeout
    control.clear_faults()
    control.script([{"match": START, "times": 1, "action": {"type": "hang", "seconds": 8}}])
    # then the probe's outcome is unknown (it may be live: it keeps its permit, never redialed),
    # and the next call in line probes after the cooldown, with no watchdog to send it; its
    # success starts the rest (a probe that held the circuit shut would wait out its 60 s TTL).
    # (A busy machine may time out a 503 too: such a call is unknown as well, rightly.)
    settled = {"connected", "completed", "unknown"}
    deadline = time.monotonic() + 30
    while not all(stack.call(call_id)["status"] in settled for call_id in ids):
        assert time.monotonic() < deadline, [stack.call(i)["status"] for i in ids]
        time.sleep(0.5)
    statuses = [stack.call(call_id)["status"] for call_id in ids]
    assert "unknown" in statuses
    assert statuses.count("unknown") < CALLS // 2, statuses
