"""Prometheus metrics scraped from a real worker: calls by state from the database, starts,
their latency, 429s and webhook failures counted in the worker process."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dialq.api import enqueue_call
from dialq.ops.local_redis import free_port
from dialq.store import Database, webhooks_repo
from tests.stack import Stack
from tests.webhook_receiver import Receiver, running_receiver

NUMBER = "+1 415 555 0142"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The gauges are one GROUP BY, the same on both databases: SQLite keeps this test quick."""
    return sqlite_url


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _wait_for_scrape(port: int, ready: object, timeout_s: float = 20.0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    last: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        try:
            last = _scrape(port)
        except OSError:
            last = {}
        if last and ready(last):  # type: ignore[operator]
            return last
        time.sleep(0.2)
    raise AssertionError(f"metrics never matched: {sorted(last.items())}")


def test_a_worker_serves_calls_by_state_and_start_counters_with_latency(stack: Stack) -> None:
    # given a worker serving metrics, and an account that allows one live call
    port = free_port()
    stack.env["DIALQ_METRICS_PORT"] = str(port)
    stack.sandbox.control.configure(max_concurrent=1)
    stack.start_worker(concurrency=4)
    # when three calls are placed
    handles = [enqueue_call({"phone_number": NUMBER}, settings=stack.settings) for _ in range(3)]
    stack.wait_for(handles[0].id, {"connected", "waiting"})

    # then the scrape shows one connected call, the others waiting, and the starts counted
    def ready(samples: dict) -> bool:  # type: ignore[type-arg]
        return (
            samples.get(("dialq_calls", (("state", "connected"),))) == 1
            and samples.get(("dialq_capacity_rejections_total", ()), 0) >= 1
        )

    samples = _wait_for_scrape(port, ready)
    states = {
        dict(labels)["state"]: value
        for (name, labels), value in samples.items()
        if name == "dialq_calls"
    }
    assert sum(states.values()) == 3
    assert states["queued"] + states["waiting"] + states["dialing"] == 2
    assert samples[("dialq_start_requests_total", (("code", "201"),))] == 1
    rejected = samples[("dialq_start_requests_total", (("code", "429"),))]
    assert rejected == samples[("dialq_capacity_rejections_total", ())]
    assert samples[("dialq_start_latency_seconds_count", ())] == 1 + rejected
    assert samples[("dialq_start_latency_seconds_sum", ())] > 0
    assert samples[("dialq_database_up", ())] == 1
    assert samples[("dialq_permits_in_use", (("account", "default"),))] == 1
    assert ("dialq_waiting_calls", ()) in samples
    assert ("dialq_oldest_waiting_call_age_seconds", ()) in samples
    # and no phone number reaches the metrics
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "4155550142" not in text


WEBHOOK_FAILURES = ("dialq_webhook_failures_total", ())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def _webhook_statuses(stack: Stack, call_id: str) -> list[int | None]:
    """The answer to each webhook POST the worker recorded for this call, in order."""
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.sessions() as session:
            return [a.status_code for a in webhooks_repo.attempts_of(session, call_id)]
    finally:
        db.dispose()


def test_webhook_posts_the_receiver_refuses_are_counted_as_failures_and_accepted_ones_not(
    stack: Stack, receiver: Receiver
) -> None:
    # given a worker serving metrics with no webhook failure yet, and a receiver that refuses
    # its first two POSTs (500, then 503) and accepts the rest
    port = free_port()
    stack.env["DIALQ_METRICS_PORT"] = str(port)
    receiver.script = [("status", 500), ("status", 503)]
    stack.start_worker()
    before = _wait_for_scrape(port, lambda samples: WEBHOOK_FAILURES in samples)
    assert before[WEBHOOK_FAILURES] == 0
    # when a call with a callback connects and its three events are delivered
    handle = enqueue_call(
        {"phone_number": NUMBER, "callback_url": f"{receiver.url}/hooks"},
        settings=stack.settings,
    )
    stack.wait_for(handle.id, {"connected"})
    receiver.wait_for(5)
    deadline = time.monotonic() + 20
    while len(statuses := _webhook_statuses(stack, handle.id)) < 5:
        assert time.monotonic() < deadline, f"recorded {statuses}\n{stack.worker_logs()[-3000:]}"
        time.sleep(0.1)
    assert statuses[:5] == [500, 503, 200, 200, 200]
    # then the scrape counts the two refusals, and the three accepted POSTs not at all
    after = _wait_for_scrape(port, lambda samples: samples.get(WEBHOOK_FAILURES, 0) >= 2)
    time.sleep(0.5)  # the counter follows each commit: give a wrongly counted success time
    assert _scrape(port)[WEBHOOK_FAILURES] == after[WEBHOOK_FAILURES] == 2
