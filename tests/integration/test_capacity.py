"""Capacity: permits keep live calls within the limit; a dead worker's permit comes back."""

from __future__ import annotations

import json
import re
import signal
import time

import redis
from sqlalchemy import update

from dialq import routing
from dialq.api import enqueue_call, producer_runtime
from dialq.capacity import Capacity, Verdict, waiting_score
from dialq.store import Call
from tests.stack import Stack

NUMBER = "+14155550110"


def live_peak(calls: list[dict[str, object]]) -> int:
    """The most calls live at once at the sandbox, from its own start and end times."""
    edges = []
    for call in calls:
        edges.append((float(call["started_at"]), 1))  # type: ignore[arg-type]
        if call["ended_at"] is not None:
            edges.append((float(call["ended_at"]), -1))  # type: ignore[arg-type]
    live = peak = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        live += step
        peak = max(peak, live)
    return peak


def ask(capacity: Capacity, account: str, call_id: str, score: int) -> Verdict:
    """The verdict of one acquire with a minute's lease."""
    return capacity.acquire(account, call_id, score=score, lease_s=60).verdict


def test_with_a_limit_of_3_ten_calls_all_complete_never_more_than_3_live_and_no_429(
    stack: Stack,
) -> None:
    # given an account limit of 3 (dialq and the API agree) and calls lasting 1 s
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "3"
    stack.sandbox.control.configure(max_concurrent=3, call_seconds=1.0)
    stack.start_worker()
    # when ten calls are enqueued at once
    handles = [enqueue_call({"phone_number": NUMBER}, settings=stack.settings) for _ in range(10)]
    # then all complete, never more than 3 were live, and the API never had to say 429
    for handle in handles:
        stack.wait_for(handle.id, {"completed"}, timeout_s=40)
    calls = stack.sandbox.control.calls()
    assert len(calls) == 10
    assert live_peak(calls) <= 3
    starts = [r for r in stack.sandbox.control.requests() if r.get("operation") == "start"]
    assert [r["status"] for r in starts].count(429) == 0
    assert producer_runtime(stack.settings).capacity.usage("default").permits_in_use == 0


def test_a_lower_api_limit_is_learned_and_every_call_still_completes(stack: Stack) -> None:
    # given dialq believes in 4 slots but the API (shared with someone else) allows 2
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "4"
    stack.env["DIALQ_CAPACITY_RETRY_S"] = "0.2"
    stack.sandbox.control.configure(max_concurrent=2, call_seconds=1.0)
    stack.start_worker()
    # when eight calls are enqueued
    handles = [enqueue_call({"phone_number": NUMBER}, settings=stack.settings) for _ in range(8)]
    # then all complete, and the learned limit came down to what the API accepts
    for handle in handles:
        stack.wait_for(handle.id, {"completed"}, timeout_s=60)
    # (it is raised again by one after as many starts as it allows, and probed, so its value at
    # the end depends on timing: what it fell to is what the worker logged)
    learned = [int(n) for n in re.findall(r"learned limit now (\d+)", stack.worker_logs())]
    assert learned
    assert min(learned) <= 2
    usage = producer_runtime(stack.settings).capacity.usage("default")
    assert usage.http_429_last_hour == len(learned)
    starts = [r for r in stack.sandbox.control.requests() if r.get("operation") == "start"]
    assert [r["status"] for r in starts].count(429) <= 4  # learned quickly, not hammered
    assert live_peak(stack.sandbox.control.calls()) <= 2


def test_a_worker_killed_while_holding_a_permit_gets_it_back_when_the_lease_expires(
    stack: Stack,
) -> None:
    # given a limit of 1, short leases, and a start request the API answers slowly
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "1"
    stack.env["DIALQ_PERMIT_LEASE_MARGIN_S"] = "1"
    stack.sandbox.control.script(
        [{"match": {"operation": "start"}, "times": 1, "action": {"type": "hang", "seconds": 30}}]
    )
    worker = stack.start_worker()
    first = enqueue_call({"phone_number": NUMBER, "max_duration_s": 10}, settings=stack.settings)
    stack.wait_for(first.id, {"dialing"})
    # (its start request is out, so the one slow answer is spent on it, not on the next call)
    deadline = time.monotonic() + 20
    while not stack.starts_for(first.id):
        assert time.monotonic() < deadline, "the start request never reached the sandbox"
        time.sleep(0.05)
    # when the worker is killed while it holds the only permit
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    capacity = producer_runtime(stack.settings).capacity
    assert capacity.usage("default").permits_in_use == 1
    # then the permit is free again once its lease (max duration + margin) has run out
    deadline = time.monotonic() + 20
    while capacity.usage("default").permits_in_use and time.monotonic() < deadline:
        time.sleep(0.2)
    assert capacity.usage("default").permits_in_use == 0
    # and another call can use it
    stack.start_worker()
    second = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(second.id, {"connected"})


def test_permits_are_idempotent_per_call_and_newcomers_do_not_barge_past_waiters(
    redis_url: str,
) -> None:
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 2})
    # given two calls holding both permits (one of them asking twice)
    assert ask(capacity, "a", "c1", waiting_score(5, 1)) is Verdict.GRANTED
    assert ask(capacity, "a", "c1", waiting_score(5, 1)) is Verdict.GRANTED
    assert ask(capacity, "a", "c2", waiting_score(5, 2)) is Verdict.GRANTED
    # when an old call and then a newer one ask
    assert ask(capacity, "a", "old", waiting_score(5, 3)) is Verdict.FULL
    assert ask(capacity, "a", "new", waiting_score(5, 4)) is Verdict.FULL
    # then a release offers the slot to the old one, and the newcomer cannot take it first
    assert capacity.release("a", "c1") == ["old"]
    assert ask(capacity, "a", "new", waiting_score(5, 4)) is Verdict.FULL
    assert ask(capacity, "a", "old", waiting_score(5, 3)) is Verdict.GRANTED


def test_an_index_rebuilt_from_an_old_read_leaves_out_calls_granted_since(
    redis_url: str,
) -> None:
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 1})
    # given the watchdog read two waiting rows, and the older one took the permit meanwhile
    read = {"older": waiting_score(5, 1), "newer": waiting_score(5, 2)}
    assert ask(capacity, "a", "older", read["older"]) is Verdict.GRANTED
    # when the index is rebuilt from that read
    capacity.index_missing("a", read)
    # then only the call still waiting is indexed: the granted one stands ahead of no one
    assert capacity.usage("a").waiting_in_redis == 1
    capacity.release("a", "older")
    assert ask(capacity, "a", "newer", read["newer"]) is Verdict.GRANTED


def test_a_waiter_found_over_is_dropped_and_its_wake_passed_to_the_next(stack: Stack) -> None:
    # given a call long completed still indexed as waiting, ahead of one really waiting
    capacity = producer_runtime(stack.settings).capacity
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "1"
    stack.start_worker()
    stack.sandbox.control.configure(call_seconds=0.5)
    done = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(done.id, {"completed"}, timeout_s=30)
    stack.sandbox.control.configure(call_seconds=None)
    live = enqueue_call({"phone_number": NUMBER, "max_duration_s": 60}, settings=stack.settings)
    stack.wait_for(live.id, {"connected"})
    waiter = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(waiter.id, {"waiting"})
    capacity.index_missing("default", {done.id: 0, waiter.id: waiting_score(5, 10**12)})
    # when the live call ends and its release wakes the head (the completed call)
    stack.sandbox.control.end_call(stack.call(live.id)["connection_id"])
    # then the stale entry is dropped and the real waiter is dialed at once, not a tick later
    stack.wait_for(waiter.id, {"connected"}, timeout_s=10)
    assert capacity.usage("default").waiting_in_redis == 0
    assert len(stack.starts_for(waiter.id)) == 1


def test_the_watchdog_frees_permits_of_unclaimed_or_unwritten_calls_once_no_claim_can_follow(
    stack: Stack,
) -> None:
    # given three undialed calls holding permits: one granted just now (its worker is between
    # grant and claim commit), one granted long ago (its claim rolled back), one canceled
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "5"
    runtime = producer_runtime(stack.settings)
    fresh, abandoned, canceled = (
        enqueue_call({"phone_number": NUMBER}, settings=stack.settings) for _ in range(3)
    )
    past = Capacity(runtime.redis, runtime.capacity.limits, clock=lambda: time.time() - 2 * 60)
    past.acquire("default", abandoned.id, score=1, lease_s=3600)
    # and one granted long ago to a call whose producer died before writing its row
    past.acquire("default", "never-written", score=4, lease_s=3600)
    runtime.capacity.acquire("default", fresh.id, score=2, lease_s=3600)
    runtime.capacity.acquire("default", canceled.id, score=3, lease_s=3600)
    with runtime.db.transaction() as session:
        session.execute(update(Call).where(Call.id == canceled.id).values(status="canceled"))
    # when the watchdog ticks
    report = runtime.service.watchdog()
    # then the old grant, the canceled call's and the row-less one are freed; the fresh
    # grant is kept
    assert report["permits_freed"] == 3
    assert runtime.capacity.holders("default") == [fresh.id]


def test_a_higher_priority_waiter_goes_first(redis_url: str) -> None:
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 1})
    capacity.acquire("a", "busy", score=waiting_score(5, 1), lease_s=60)
    capacity.acquire("a", "low", score=waiting_score(1, 2), lease_s=60)
    capacity.acquire("a", "high", score=waiting_score(9, 3), lease_s=60)
    assert capacity.release("a", "busy") == ["high"]


def test_accounts_have_separate_permits(redis_url: str) -> None:
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 1, "b": 1})
    assert ask(capacity, "a", "x", 1) is Verdict.GRANTED
    assert capacity.acquire("b", "y", score=1, lease_s=60).verdict is Verdict.GRANTED
    assert ask(capacity, "a", "z", 2) is Verdict.FULL


def test_a_429_cools_the_account_down_and_clean_starts_raise_the_learned_limit_again(
    redis_url: str,
) -> None:
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 4})
    for name in ("c1", "c2", "c3"):
        capacity.acquire("a", name, score=1, lease_s=60)
    # when the third call's start answers 429
    learned = capacity.saw_429("a", "c3", cooldown_s=0.3)
    # then the limit learned is what the API holds, and nobody starts during the cooldown
    assert learned == 2
    assert ask(capacity, "a", "c4", 2) is Verdict.COOLDOWN
    time.sleep(0.35)
    capacity.release("a", "c1")
    assert ask(capacity, "a", "c4", 2) is Verdict.GRANTED
    # and after a full turnover of clean starts the limit grows back one step
    assert [capacity.saw_success("a") for _ in range(2)][-1] == 3
    assert capacity.usage("a").http_429_last_hour == 1


def test_a_permit_says_whether_a_clean_start_could_raise_the_learned_limit(
    redis_url: str,
) -> None:
    # given an account of 2 whose API has never answered 429
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 2})
    first = capacity.acquire("a", "c1", score=1, lease_s=60)
    assert first.verdict is Verdict.GRANTED
    assert first.learning is False  # a dial skips `saw_success`: nothing to raise
    # when a 429 lowers the learned limit to 1
    assert capacity.saw_429("a", "c1", cooldown_s=0.05) == 1
    time.sleep(0.1)
    capacity.release("a", "c1")
    # then the next permit says so, and its clean start raises the limit back to 2
    second = capacity.acquire("a", "c2", score=2, lease_s=60)
    assert second.verdict is Verdict.GRANTED
    assert second.learning is True
    assert capacity.saw_success("a") == 2
    # and once it is back at the configured limit, permits say there is nothing to learn
    third = capacity.acquire("a", "c3", score=3, lease_s=60)
    assert third.verdict is Verdict.GRANTED
    assert third.learning is False


def test_dialq_capacity_json_reports_permits_waiting_and_limits(stack: Stack) -> None:
    # given an account of 1 with one live call and one waiting
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "1"
    stack.start_worker()
    live = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(live.id, {"connected"})
    waiting = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(waiting.id, {"waiting"})
    # when an operator asks
    shown = stack.cli("capacity", "--json")
    # then the answer names the account, its permits in use, its waiting calls and limits
    assert shown.returncode == 0, shown.stderr
    (row,) = json.loads(shown.stdout)
    assert row["account"] == "default"
    assert row["permits_in_use"] == 1
    assert row["waiting_calls"] == 1
    assert (row["configured_limit"], row["learned_limit"]) == (1, 1)


def test_each_released_permit_is_handed_to_exactly_one_waiter_and_no_waiter_is_woken_twice(
    redis_url: str,
) -> None:
    # given 50 permits held and 200 calls in line (the 1,000-call burst at limit 50, in small)
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 50})
    for n in range(50):
        assert ask(capacity, "a", f"live{n}", waiting_score(5, n)) is Verdict.GRANTED
    for n in range(200):
        assert ask(capacity, "a", f"w{n:03}", waiting_score(5, 1000 + n)) is Verdict.FULL
    # when every live call ends, and the watchdog's hand-off runs after each
    woken: list[str] = []
    for n in range(50):
        woken += capacity.release("a", f"live{n}")
        woken += capacity.hand_off("a")
    # then 50 waiters were woken, the first 50 in line, each exactly once
    assert woken == [f"w{n:03}" for n in range(50)]
    assert capacity.usage("a").permits_in_use == 50
    assert capacity.usage("a").waiting_in_redis == 150


def test_a_newcomer_finding_free_permits_behind_waiters_hands_them_to_the_line_first(
    redis_url: str,
) -> None:
    # given a full account of 2 with two calls in line, and a 429 cooldown that just ended
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 2})
    for name in ("x", "y"):
        ask(capacity, "a", name, 1)
    ask(capacity, "a", "old1", 10)
    ask(capacity, "a", "old2", 11)
    capacity.redis.zrem("dialq:cap:a:permits", "x", "y")  # both ended; nobody was told
    # when a newer call asks
    admission = capacity.acquire("a", "new", score=12, lease_s=60)
    # then it waits its turn, and the two free permits go to the calls ahead of it
    assert admission.verdict is Verdict.FULL
    assert admission.handed == ["old1", "old2"]
    assert capacity.holders("a") == ["old1", "old2"]


def test_a_call_handed_a_permit_holds_it_until_its_dial_claims_it(redis_url: str) -> None:
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 1})
    ask(capacity, "a", "busy", 1)
    ask(capacity, "a", "next", 2)
    assert capacity.release("a", "busy") == ["next"]
    # a newcomer cannot take the permit held for `next`; `next`'s own dial gets it
    assert ask(capacity, "a", "later", 3) is Verdict.FULL
    assert ask(capacity, "a", "next", 2) is Verdict.GRANTED


def test_the_line_repair_adds_only_calls_missing_and_holding_no_permit(redis_url: str) -> None:
    capacity = Capacity(redis.Redis.from_url(redis_url), {"a": 1})
    ask(capacity, "a", "live", 1)
    ask(capacity, "a", "in-line", 2)
    # when the database's page of waiting rows holds one indexed, one lost, one now live
    added = capacity.index_missing("a", {"in-line": 2, "lost": 3, "live": 1})
    # then only the lost one is put back
    assert added == 1
    assert capacity.usage("a").waiting_in_redis == 2


def test_a_duplicate_dial_of_a_live_call_leaves_its_permit_held(stack: Stack) -> None:
    # given a live call holding one of two permits
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "2"
    stack.start_worker()
    runtime = producer_runtime(stack.settings)
    live = enqueue_call({"phone_number": NUMBER, "max_duration_s": 60}, settings=stack.settings)
    stack.wait_for(live.id, {"connected"})
    # when a stale copy of its dial message is delivered
    runtime.publisher.publish(routing.DIAL, live.id)
    deadline = time.monotonic() + 10
    while "'skipped'" not in stack.worker_logs():
        assert time.monotonic() < deadline, "the duplicate was never delivered"
        time.sleep(0.1)
    # then the live call still holds its permit, and no second start was sent
    assert runtime.capacity.holders("default") == [live.id]
    assert len(stack.starts_for(live.id)) == 1
