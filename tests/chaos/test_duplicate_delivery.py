"""The same dial message delivered many times, at once, to several worker processes."""

from __future__ import annotations

import threading
import time

import pytest
from celery import Celery

from dialq import routing
from dialq.worker import create_app
from tests.chaos.conftest import Record, Scale
from tests.chaos.harness import ChaosStack, assert_promises_kept, run_scenario

COPIES = 6


def _publish_copies(app: Celery, ids: list[str], copies: int) -> int:
    """Publish `copies` more dial messages for every call, from several threads at once."""
    sent = [0]
    lock = threading.Lock()

    def send(call_id: str) -> None:
        app.send_task(routing.DIAL, args=[call_id], queue=routing.QUEUE_DIAL)
        with lock:
            sent[0] += 1

    threads = [
        threading.Thread(target=send, args=(call_id,)) for call_id in ids for _ in range(copies)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sent[0]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_dial_message_delivered_many_times_to_several_workers_places_one_call(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given three worker processes and beat
    for _ in range(3):
        chaos.add_worker(concurrency=4)
    chaos.add_beat()
    published: list[int] = []

    def duplicate() -> int:
        # while calls arrive, each one's dial message is published COPIES more times
        producer = chaos.producers[-1]
        app = create_app(chaos.stack.settings)
        seen = 0
        while producer.running or seen < len(producer.ids):
            fresh = producer.ids[seen:]
            seen += len(fresh)
            published.append(_publish_copies(app, fresh, COPIES))
            time.sleep(0.2)
        app.close()
        return sum(published)

    # when calls are produced and every dial message is delivered 1 + COPIES times
    outcome = run_scenario(
        chaos,
        "dup",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=duplicate,
    )
    record(f"same message x{COPIES + 1}, 3 workers", outcome)
    # then every call was started exactly once at most, and nothing is lost or leaked
    assert outcome.faults >= COPIES * outcome.report.calls
    assert_promises_kept(outcome, chaos)
