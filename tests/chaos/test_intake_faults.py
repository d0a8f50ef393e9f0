"""Producers in trouble, with no supervisor: PostgreSQL cut and restored under the intake, and
idempotency keys reused (same request, other request, racing) between real calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import pytest
from celery import Celery
from sqlalchemy import select

from dialq import routing
from dialq.api import enqueue_call
from dialq.calls.request import InvalidCallRequest
from dialq.config import Settings
from dialq.store import Call, Database
from tests.chaos.conftest import Record, Scale
from tests.chaos.harness import ChaosStack, Outcome, Producer, assert_promises_kept, run_scenario
from tests.integration.test_intake_outage import CuttableProxy
from tests.servers import PG_ADMIN_URL

RACERS = 4


def keys_to_ids(database_url: str) -> dict[str, list[str]]:
    """Every idempotency key in the calls table, with the ids of the rows that carry it."""
    db = Database(database_url)
    try:
        with db.sessions() as session:
            rows = session.execute(select(Call.idempotency_key, Call.id)).all()
    finally:
        db.dispose()
    found: dict[str, list[str]] = {}
    for key, call_id in rows:
        found.setdefault(str(key), []).append(str(call_id))
    return found


@dataclass
class ByNameProducer:
    """Sends `dialq.place_call` by name, as a Celery client in another language would: no key
    of its own, so each message's id is its key. Remembers the message ids."""

    broker_url: str
    rate_per_s: float
    duration_s: float
    task_ids: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start(self) -> ByNameProducer:
        self._thread = threading.Thread(target=self._run, name="by-name", daemon=True)
        self._thread.start()
        return self

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(120)
        assert not self._thread.is_alive(), "the by-name producer did not finish"

    def _run(self) -> None:
        client = Celery(broker=self.broker_url)
        began = time.monotonic()
        try:
            for i in range(int(self.rate_per_s * self.duration_s)):
                time.sleep(max(0.0, began + i / self.rate_per_s - time.monotonic()))
                request = {"phone_number": f"+1 415 555 {200 + i % 100:04d}", "max_duration_s": 10}
                sent = client.send_task(
                    routing.PLACE_CALL, kwargs={"request": request}, queue=routing.QUEUE_DIAL
                )
                self.task_ids.append(str(sent.id))
        finally:
            client.close()


@pytest.fixture
def proxy() -> Iterator[CuttableProxy]:
    parts = urlsplit(PG_ADMIN_URL)
    running = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
    yield running
    running.cut()


def _through(url: str, proxy: CuttableProxy) -> str:
    netloc = urlsplit(url).netloc
    host = netloc.split("@")[-1]
    return url.replace(f"@{host}", f"@127.0.0.1:{proxy.port}", 1)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_postgres_restarted_during_intake_loses_and_doubles_no_request(
    chaos: ChaosStack, proxy: CuttableProxy, scale: Scale, record: Record
) -> None:
    # given dialq (workers, beat, producers) reaching PostgreSQL through a proxy that can cut
    # every connection and refuse new ones, as a restarting server does; the audit reads past it
    env = chaos.stack.env
    env["DIALQ_DATABASE_URL"] = _through(env["DIALQ_DATABASE_URL"], proxy)
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    by_name = ByNameProducer(env["DIALQ_BROKER_URL"], scale.rate_per_s / 2, scale.produce_s)

    def restarts() -> int:
        by_name.start()
        cuts = 0
        for _ in range(2 * scale.repeats):
            time.sleep(1.0)
            proxy.cut()
            time.sleep(3.0)
            proxy.restore()
            cuts += 1
        by_name.join()
        return cuts

    # when, while the Python API and by-name producers send calls, the database goes away
    # for 3 s at a time and comes back
    outcome = run_scenario(
        chaos,
        "intake",
        rate_per_s=scale.rate_per_s / 2,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=restarts,
    )
    # then each by-name request is one row (its message id is its key), none missing...
    keys = [f"celery-task:{task_id}" for task_id in by_name.task_ids]
    rows = _rows_for(chaos, keys, scale.recovery_s)
    missing = tuple(f"by-name message {key}" for key in keys if key not in rows)
    both = [*chaos.producers[-1].ids, *(rows[key][0] for key in keys if key in rows)]
    outcome = replace(outcome, report=chaos.settle(both, scale.recovery_s))
    shown = replace(outcome.report, missing=(*outcome.report.missing, *missing))
    record("postgres restarted during intake", replace(outcome, report=shown))
    assert missing == ()
    assert outcome.faults >= 2
    assert by_name.task_ids
    assert chaos.producers[-1].ids
    assert all(len(ids) == 1 for ids in rows.values()), rows
    # ...both kinds of producer did meet the outage (the Python API's retried with its keys,
    # by-name messages came back after a countdown), and every call is final, started once
    assert chaos.producers[-1].retries > 0
    assert "Retry in" in "".join(p.logs() for p in chaos.processes)
    assert_promises_kept(outcome, chaos)


def _rows_for(chaos: ChaosStack, keys: list[str], timeout_s: float) -> dict[str, list[str]]:
    """The calls table by key, once every key has its row (a by-name request may still be in
    its retry countdown, up to a minute, when the producer's calls are all final)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = keys_to_ids(chaos.audit_url)
        if all(key in rows for key in keys) or time.monotonic() > deadline:
            return rows
        time.sleep(1.0)


@dataclass
class Reuse:
    """What the producers reusing keys saw: each mismatch is a broken promise, described."""

    same: int = 0
    refused: int = 0
    raced: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)


def _reuse(producer: Producer, settings: Settings, i: int, seen: Reuse) -> None:
    """Send call `i`'s request again (same call back), then with another number (refused)."""
    again = enqueue_call(producer.request(i), settings=settings)
    seen.same += 1
    if again.id != producer.ids[i] or again.created:
        seen.broken.append(f"key {i}: same request gave {again}, not {producer.ids[i]}")
    other = {**producer.request(i), "phone_number": "+1 415 555 0999"}
    try:
        made = enqueue_call(other, settings=settings)
    except InvalidCallRequest as error:
        seen.refused += 1
        if [e.field for e in error.errors] != ["idempotency_key"]:
            seen.broken.append(f"key {i}: refused naming {error}")
    else:
        seen.broken.append(f"key {i}: a different request was accepted: {made}")


def _race(settings: Settings, key: str, seen: Reuse) -> None:
    """RACERS producers send the same new request at the same moment: one call for all."""
    request = {"phone_number": "+1 415 555 0777", "idempotency_key": key, "max_duration_s": 10}
    barrier = threading.Barrier(RACERS)
    handles: list[object] = []

    def one() -> None:
        barrier.wait(10)
        handles.append(enqueue_call(request, settings=settings))

    threads = [threading.Thread(target=one) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ids = {h.id for h in handles}  # type: ignore[attr-defined]
    created = sum(bool(h.created) for h in handles)  # type: ignore[attr-defined]
    if len(handles) != RACERS or len(ids) != 1 or created != 1:
        seen.broken.append(f"race {key}: {len(ids)} calls, {created} created: {handles}")
    seen.raced.extend(ids)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_reused_idempotency_keys_make_one_call_each_and_a_different_request_is_refused(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given two unsupervised workers and beat
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    settings = chaos.stack.settings
    seen = Reuse()

    def reuse_keys() -> int:
        producer = chaos.producers[-1]
        reused: set[int] = set()
        races = 0
        while producer.running or len(reused) < len(producer.ids):
            fresh = [i for i in range(len(producer.ids)) if i not in reused]
            for i in fresh[:3]:
                _reuse(producer, settings, i, seen)
                reused.add(i)
            _race(settings, f"race-{races}", seen)
            races += 1
            time.sleep(0.2)
        return seen.same + seen.refused + races * (RACERS - 1)

    # when, while calls arrive, every call's key is sent again with the same request and with
    # another one, and fresh keys are raced by four producers at once
    outcome = run_scenario(
        chaos,
        "reuse",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=reuse_keys,
    )
    outcome = _with_raced(chaos, outcome, seen, scale)
    record("idempotency keys reused", outcome)
    # then each key is one call: the same request gets it back, another one is refused naming
    # `idempotency_key`, racers all get the one call their race made...
    assert seen.broken == []
    assert seen.same == seen.refused == len(chaos.producers[-1].ids)
    rows = keys_to_ids(chaos.audit_url)
    assert all(len(ids) == 1 for ids in rows.values()), rows
    assert len(rows) == outcome.report.calls
    # ...and every call is final, started once
    assert_promises_kept(outcome, chaos)


def _with_raced(chaos: ChaosStack, outcome: Outcome, seen: Reuse, scale: Scale) -> Outcome:
    """The audit of the producer's calls and the racers' calls together."""
    report = chaos.settle([*chaos.producers[-1].ids, *seen.raced], scale.recovery_s)
    return replace(outcome, report=report)
