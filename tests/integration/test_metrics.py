"""Prometheus metrics scraped from a real worker: calls by state from the database, starts,
their latency and 429s counted in the worker process."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dialq.api import enqueue_call
from dialq.redis_server import free_port
from tests.stack import Stack

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
