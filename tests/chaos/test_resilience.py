"""Production misbehaving around dialq, with no supervisor: poison messages between real calls,
a long API outage, and cancels landing at every step of a dial."""

from __future__ import annotations

import math
import random
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime

import pytest

from dialq import routing
from dialq.api import cancel_call
from dialq.testing.audit import read_calls
from dialq.worker import create_app
from tests.chaos.conftest import Record, Scale
from tests.chaos.harness import ChaosStack, assert_promises_kept, run_scenario
from tests.integration.test_poison_messages import POISON, publish_raw, task_headers

START = {"path": "/v1/endpoint:connect", "operation": "start"}
NOT_YET_STARTED = frozenset({"queued", "waiting", "dialing"})


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_poison_messages_between_real_calls_kill_no_process_and_lose_no_call(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given two unsupervised workers and beat
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    broker = chaos.stack.env["DIALQ_BROKER_URL"]

    def poison() -> int:
        sent = 0
        for _ in range(scale.repeats * 2):
            for queue, task, body, raw in POISON:
                publish_raw(broker, queue, body, task_headers(task), raw=raw)
                sent += 1
                time.sleep(0.1)
        return sent

    # when every kind of malformed message is sent while calls arrive
    outcome = run_scenario(
        chaos,
        "poison",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=poison,
    )
    record("poison messages, every kind", outcome)
    # then no process died, and every call is final, once
    assert outcome.faults >= len(POISON)
    assert_promises_kept(outcome, chaos)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_long_api_outage_fails_no_call_and_the_backlog_drains_when_it_ends(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given an account circuit with short cooldowns, two unsupervised workers and beat
    chaos.stack.env.update(
        {"DIALQ_API_CIRCUIT_COOLDOWN_S": "1", "DIALQ_API_CIRCUIT_MAX_COOLDOWN_S": "5"}
    )
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    control = chaos.sandbox.control
    outage_s = 600.0 if scale.long else 30.0
    drained: list[float] = []
    looks: list[float] = []

    def outage() -> int:
        # every start answered 503 from the first call until `outage_s` later
        rule = {"type": "status", "status": 503}
        control.script([{"match": START, "times": 10_000_000, "action": rule}])
        time.sleep(scale.produce_s + 5)  # every call made and parked
        before, began = _dial_deliveries(chaos), time.monotonic()
        time.sleep(max(0.0, outage_s - scale.produce_s - 5))
        looks.append((_dial_deliveries(chaos) - before) / (time.monotonic() - began))
        control.clear_faults()
        drained.append(_seconds_to_drain(chaos, timeout_s=4 * scale.recovery_s))
        return 1

    # when calls arrive during an outage longer than any failure budget lasts
    outcome = run_scenario(
        chaos,
        "outage",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=outage,
    )
    record(f"API outage {outage_s:.0f} s (503)", outcome)
    # then not one call failed, and all were placed soon after the API was back
    failed = outcome.report.statuses.get("failed", 0)
    assert failed == 0, outcome.report.statuses
    assert_promises_kept(outcome, chaos)
    # 50 permits and calls of 1-3 s (2 s on average): at full capacity the last of the backlog
    # starts after ceil(calls / 50) - 1 rounds; the probe's pause (at most the 5 s cooldown
    # cap) is what the circuit adds to it.
    ideal_s = (math.ceil(outcome.report.calls / 50) - 1) * 2.0
    print(
        f"\nAPI outage {outage_s:.0f}s: {outcome.report.calls} calls, {failed} failed, "
        f"{looks[0]:.2f} dial deliveries/s once all were waiting, "
        f"backlog started {drained[0]:.1f}s after the API returned (ideal at full capacity "
        f"~{ideal_s:.0f}s, plus up to the 5s cooldown cap)"
    )


def _dial_deliveries(chaos: ChaosStack) -> int:
    """Dial messages the workers received so far (their `Task dialq.dial[...] received` lines)."""
    logs = "".join(p.logs() for p in chaos.processes)
    return sum(
        1 for line in logs.splitlines() if f"Task {routing.DIAL}[" in line and "received" in line
    )


def _seconds_to_drain(chaos: ChaosStack, timeout_s: float) -> float:
    """From now until no call waits to be started (every one connected or beyond)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        calls = read_calls(chaos.audit_url)
        if calls and not any(c.status in NOT_YET_STARTED for c in calls.values()):
            return time.monotonic() - began
        time.sleep(0.2)
    return float("inf")


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_cancels_at_every_step_of_a_dial_are_final_and_nothing_is_dialed_after_them(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given two unsupervised workers and beat, and an API whose starts are slow or refused
    # now and then, so cancels land while calls are queued, waiting, dialing and connected
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    control = chaos.sandbox.control
    control.random_faults(
        seed=11,
        rates={"slow": 0.3, "503": 0.2},
        match=START,
        slow_seconds=1.0,
    )
    canceled: dict[str, tuple[int, str]] = {}  # call id -> (log seq at cancel, its state)
    rng = random.Random(5)

    def cancels() -> int:
        seq = 0
        producer = chaos.producers[-1]
        while producer.running:
            fresh = [i for i in producer.ids[-10:] if i not in canceled]
            if fresh:
                call_id = rng.choice(fresh)
                entries = control.requests(since=seq)
                seq = max([seq, *(int(e["seq"]) for e in entries)])
                result = cancel_call(call_id, settings=chaos.stack.settings)
                canceled[call_id] = (seq, result.status)
            time.sleep(rng.uniform(0.1, 0.5))
        return len(canceled)

    # when a third of the calls or so are canceled at random moments while they arrive
    outcome = run_scenario(
        chaos,
        "cancel",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=cancels,
    )
    control.clear_faults()
    # then no start request was sent for a call after its cancel (beyond the one a worker
    # already had in flight when the cancel came), and every canceled call ended canceled
    # or completed (a cancel that came after the call ended leaves it as it was)
    after = 0
    log = control.requests()
    for call_id, (seq, state) in canceled.items():
        late = [
            e for e in log
            if e.get("operation") == "start" and e.get("call_id") == call_id and e["seq"] > seq
        ]  # fmt: skip
        in_flight = 1 if state == "dialing" else 0
        after += max(0, len(late) - in_flight)
    outcome = replace(outcome, dialed_after_cancel=after)
    record("cancel at every step", outcome)
    statuses = {chaos.stack.call(call_id)["status"] for call_id in canceled}
    assert statuses <= {"canceled", "completed"}, statuses
    assert_promises_kept(outcome, chaos)


class DrippingReceivers:
    """Webhook receivers that answer a status line, then one byte every 0.5 s, forever."""

    def __init__(self, count: int) -> None:
        self.servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
        self.stop = threading.Event()
        self.accepted = 0
        for server in self.servers:
            server.settimeout(0.2)
            threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{s.getsockname()[1]}/hook" for s in self.servers]

    def _accept(self, server: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed: the scenario is over
            self.accepted += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not self.stop.is_set():
                    conn.sendall(b"X")
                    time.sleep(0.5)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        for server in self.servers:
            server.close()


def _dial_latencies(chaos: ChaosStack, ids: list[str]) -> list[float]:
    """Seconds from each call's creation to its connection."""
    rows = [chaos.stack.call(call_id) for call_id in ids]
    return sorted(
        (
            datetime.fromisoformat(r["connected_at"]) - datetime.fromisoformat(r["created_at"])
        ).total_seconds()
        for r in rows
        if r.get("connected_at")
    )


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(0.99 * len(values)))] if values else float("nan")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_slow_webhook_receivers_do_not_delay_dialing(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given `dialq worker` (a pool per kind of work), beat, and webhooks that may take 10 s
    chaos.stack.env["DIALQ_WEBHOOK_TIMEOUT_S"] = "10"
    chaos.add_dialq_worker("--dial-concurrency", "4", "--webhooks-concurrency", "2")
    chaos.add_beat()
    receivers = DrippingReceivers(10)
    try:
        # when calls are placed with a callback to a fast-failing URL (nothing listens)...
        quiet = run_scenario(
            chaos,
            "fast-hooks",
            rate_per_s=scale.rate_per_s,
            produce_s=scale.produce_s,
            recovery_s=scale.recovery_s,
            inject=lambda: 0,
            request={"callback_url": "http://127.0.0.1:9/hook"},
        )
        baseline = _dial_latencies(chaos, chaos.producers[-1].ids)
        # ...then with callbacks to 10 receivers that drip one byte every 0.5 s
        urls = receivers.urls
        outcome = run_scenario(
            chaos,
            "slow-hooks",
            rate_per_s=scale.rate_per_s,
            produce_s=scale.produce_s,
            recovery_s=scale.recovery_s,
            inject=lambda: len(urls),
            request=lambda i: {"callback_url": urls[i % len(urls)]},
        )
        slow = _dial_latencies(chaos, chaos.producers[-1].ids)
        # the webhooks pool may start after the calls settled on a loaded machine: give its
        # deliveries time to reach the receivers (the check below is that they did)
        deadline = time.monotonic() + 60
        while receivers.accepted < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        receivers.close()
    record("10 slow webhook receivers", outcome)
    # then every call is final, once, no process died, the receivers did hold deliveries...
    assert_promises_kept(quiet, chaos)
    assert_promises_kept(outcome, chaos)
    assert receivers.accepted >= 2
    # ...and no dial waited for a webhook thread: with one shared pool, dials queue behind
    # POSTs that each hold a thread for 10 s (the speed comparison itself is printed)
    print(
        f"\ndial latency p99: {_p99(baseline):.3f}s without slow receivers, "
        f"{_p99(slow):.3f}s with 10 ({_p99(slow) / _p99(baseline):.2f}x)"
    )
    assert _p99(slow) < _p99(baseline) + 5.0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_twenty_duplicate_watch_messages_per_live_call_do_not_multiply_polling(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given a 1 s watch interval, two unsupervised workers and beat
    chaos.stack.env["DIALQ_WATCH_INTERVAL_S"] = "1"
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    copies = 20

    def duplicate_watches() -> int:
        # each call, once live, gets 20 more watch messages than it should
        app = create_app(chaos.stack.settings)
        producer = chaos.producers[-1]
        done: set[str] = set()
        sent = 0
        deadline = time.monotonic() + scale.produce_s + 20
        while time.monotonic() < deadline and (producer.running or len(done) < len(producer.ids)):
            live = [
                c.id
                for c in read_calls(chaos.audit_url).values()
                if c.status == "connected" and c.id not in done
            ]
            for call_id in live:
                for _ in range(copies):
                    app.send_task(routing.WATCH_CALL, args=[call_id], queue=routing.QUEUE_LIFECYCLE)
                sent += copies
                done.add(call_id)
            time.sleep(0.2)
        app.close()
        return sent

    # when calls arrive and each live one is sent 20 duplicate watch messages
    outcome = run_scenario(
        chaos,
        "watch",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=duplicate_watches,
    )
    record(f"watch message x{copies + 1} per live call", outcome)
    # then every call is final, once, and each was polled about as often as one watcher
    # would (a call lives 1-3 s at the sandbox: a handful of looks, never 20 chains' worth)
    # The watcher's look is GET /v1/conversations/{id}; harvests read its sub-paths.
    gets = [
        r
        for r in chaos.sandbox.control.requests()
        if r.get("method") == "GET"
        and str(r.get("path")).startswith("/v1/conversations/")
        and str(r.get("path")).count("/") == 3
    ]
    per_call = len(gets) / max(1, outcome.report.calls)
    print(f"\nconversation GETs per call with {copies} duplicate watches: {per_call:.1f}")
    assert outcome.faults >= copies
    assert per_call <= 5, per_call
    assert_promises_kept(outcome, chaos)
