"""The chaos stack: supervised worker and beat processes, a steady producer, settle, audit.

Each scenario gets its own Redis (AOF on), sandbox and empty PostgreSQL tables, starts real
`celery worker` and `celery beat` processes under a supervisor that restarts whatever dies (as
systemd would), enqueues calls at a fixed rate while it injects its fault, then waits for the
system to recover and audits every call with `dialq.testing.audit`.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis

from dialq import routing
from dialq.api import enqueue_call
from dialq.capacity import Capacity
from dialq.ops.local_redis import PrivateRedis
from dialq.sandbox import RunningSandbox
from dialq.testing.audit import FINAL, AuditReport, audit, permit_holders, read_calls
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
FINAL_VALUES = frozenset(status.value for status in FINAL)

# Fast recovery for a short run; each must still exceed what it guards (HTTP timeouts are 2 s).
CHAOS_ENV = {
    "DIALQ_DIALING_STALE_S": "8",  # a token and a start request, each connect 2 s + read 2 s
    "DIALQ_DISPATCH_GRACE_S": "3",  # a lost dial message is published again after this
    "DIALQ_PERMIT_LEASE_MARGIN_S": "5",  # leases: max duration (10 s) plus this
    "DIALQ_BROKER_VISIBILITY_TIMEOUT_S": "120",  # the smallest allowed
    "DIALQ_FAILURE_RETRY_BUDGET": "8",
}
MAX_DURATION_S = 10


def worker_args(name: str, concurrency: int) -> list[str]:
    return [
        "-A", "dialq.worker", "worker", "-Q", ",".join(routing.ALL_QUEUES),
        "-c", str(concurrency), "--loglevel", "INFO", "-n", f"{name}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


@dataclass
class Supervised:
    """One long-running process, restarted by the supervisor whenever it dies."""

    name: str
    argv: list[str]
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    lives: int = 0
    killed: int = 0  # deaths by SIGKILL
    died: int = 0  # any other death

    def spawn(self, env: dict[str, str]) -> None:
        log = self.log_dir / f"{self.name}-{self.lives}.log"
        self.lives += 1
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                self.argv, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT
            )

    def reap(self) -> bool:
        """True when the process died (and counts how)."""
        if self.process is None or self.process.poll() is None:
            return False
        if self.process.returncode == -9:
            self.killed += 1
        else:
            self.died += 1
        return True

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"{self.name}-*.log"))
        )


@dataclass
class Producer:
    """Enqueues calls at a fixed rate through `dialq.api.enqueue_call`, like an application.

    Each call has an idempotency key; a failed enqueue (database or broker trouble) is retried
    with the same key until it returns a handle, so a retry never makes a second call.
    """

    stack: Stack
    prefix: str
    rate_per_s: float
    duration_s: float
    # More request fields, or a function of the call's index giving them.
    fields: Mapping[str, object] | Callable[[int], Mapping[str, object]] = field(
        default_factory=dict
    )
    ids: list[str] = field(default_factory=list)
    retries: int = 0
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float = 120.0) -> None:
        assert self._thread is not None
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the producer did not finish"

    def _run(self) -> None:
        settings = self.stack.settings
        count = int(self.rate_per_s * self.duration_s)
        began = time.monotonic()
        for i in range(count):
            time.sleep(max(0.0, began + i / self.rate_per_s - time.monotonic()))
            self.ids.append(self._enqueue(self.request(i), settings))

    def request(self, i: int) -> dict[str, object]:
        """The request of call number `i` (with its idempotency key), as it was sent."""
        return {
            "phone_number": f"+1 415 555 {100 + i % 100:04d}",
            "idempotency_key": f"{self.prefix}-{i}",
            "max_duration_s": MAX_DURATION_S,
            **(self.fields(i) if callable(self.fields) else self.fields),
        }

    def _enqueue(self, request: dict[str, object], settings: object) -> str:
        deadline = time.monotonic() + 60
        while True:
            try:
                return enqueue_call(request, settings=settings).id  # type: ignore[arg-type]
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.retries += 1
                time.sleep(0.2)


@dataclass
class ChaosStack:
    """Everything one scenario runs; `audit_url` reads the database without being a target."""

    stack: Stack
    redis_server: PrivateRedis
    audit_url: str
    processes: list[Supervised] = field(default_factory=list)
    producers: list[Producer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None
    _names: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def sandbox(self) -> RunningSandbox:
        return self.stack.sandbox

    def add_worker(self, *, concurrency: int = 8, prefix: Sequence[str] = ()) -> Supervised:
        """A worker: `python -m celery ...`, or `python -m <prefix> ...` (a kill-point worker)."""
        n = next(self._names)
        lead = list(prefix) if prefix else ["-m", "celery"]
        argv = [sys.executable, *lead, *worker_args(f"w{n}", concurrency)]
        return self._add(Supervised(f"worker{n}", argv, self.stack.workdir))

    def add_dialq_worker(self, *extra: str) -> Supervised:
        """`dialq worker`: a Celery worker per kind of work under dialq's own supervisor."""
        n = next(self._names)
        argv = [sys.executable, "-m", "dialq.cli", "worker", *extra]
        return self._add(Supervised(f"worker{n}", argv, self.stack.workdir))

    def add_beat(self) -> Supervised:
        schedule = self.stack.workdir / "beat-schedule"
        argv = [sys.executable, "-m", "celery", "-A", "dialq.worker", "beat", "-s", str(schedule),
                "--loglevel", "INFO"]  # fmt: skip
        return self._add(Supervised("beat", argv, self.stack.workdir))

    def _add(self, process: Supervised) -> Supervised:
        process.spawn(self.stack.process_env())
        self.processes.append(process)
        return process

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every worker is consuming (their first life)."""
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            if not process.name.startswith("worker"):
                continue
            while b" ready." not in (self.stack.workdir / f"{process.name}-0.log").read_bytes():
                assert time.monotonic() < deadline, (
                    f"{process.name} not ready:\n{process.logs()[-3000:]}"
                )
                time.sleep(0.1)

    def supervise(self) -> None:
        """Restart whatever dies, within 0.2 s, until `stop()`."""

        def loop() -> None:
            while not self._stop.wait(0.2):
                for process in self.processes:
                    if process.reap():
                        process.spawn(self.stack.process_env())

        self._supervisor = threading.Thread(target=loop, name="supervisor", daemon=True)
        self._supervisor.start()

    @property
    def kills(self) -> int:
        return sum(p.killed for p in self.processes)

    def died(self) -> int:
        """Exits other than the SIGKILLs a scenario sent (those are its faults)."""
        for process in self.processes:
            process.reap()
        # A child `dialq worker` restarted is a death too, even though the worker kept going.
        restarts = sum(p.logs().count(" exited (code ") for p in self.processes)
        return sum(p.died for p in self.processes) + restarts

    def producer(
        self,
        prefix: str,
        rate_per_s: float,
        duration_s: float,
        extra: Mapping[str, object] | Callable[[int], Mapping[str, object]] | None = None,
    ) -> Producer:
        producer = Producer(self.stack, prefix, rate_per_s, duration_s, extra or {})
        self.producers.append(producer)
        producer.start()
        return producer

    def audit(self, enqueued: Sequence[str]) -> AuditReport:
        """Audit now, with no grace: whatever is not final has had its recovery window."""
        client = redis.Redis.from_url(self.redis_server.url, socket_timeout=5)
        try:
            capacity = Capacity(client, {"default": 50})
            holders = permit_holders(capacity)
        finally:
            client.close()
        control = self.sandbox.control
        return audit(
            read_calls(self.audit_url),
            control.requests(),
            control.calls(),
            enqueued,
            now=datetime.now(UTC),
            recovery_s=0.0,
            permit_holders=holders,
        )

    def settle(self, enqueued: Sequence[str], timeout_s: float) -> AuditReport:
        """Wait until every call is final and nothing is orphaned or leaked, or the window ends.

        The returned audit is the last one taken: at the end of the window, a call that is
        still not final (and not legitimately waiting for a later time) counts as stuck.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                report = self.audit(enqueued)
            except (redis.RedisError, OSError):
                report = None  # Redis still coming back: try again
            if report is not None and _settled(report):
                return report
            if time.monotonic() > deadline:
                return report if report is not None else self.audit(enqueued)
            time.sleep(1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for process in self.processes:
            process.stop()

    def logs(self, tail: int = 6000) -> str:
        return "\n".join(p.logs()[-tail:] for p in self.processes)


def _settled(report: AuditReport) -> bool:
    return report.clean and set(report.statuses) <= FINAL_VALUES


def assert_promises_kept(outcome: Outcome, chaos: ChaosStack) -> None:
    """No call lost or stuck, none started twice, no orphan sandbox call, no leaked permit."""
    report = outcome.report
    details = describe(report, chaos.stack.call)
    assert report.lost == (), details
    assert report.doubled == (), details
    assert report.orphans == (), details
    assert report.leaked_permits == (), details
    assert outcome.died == 0, f"{outcome.died} processes died\n{chaos.logs()}"
    assert outcome.dialed_after_cancel == 0, details


def describe(report: AuditReport, lookup: Callable[[str], object]) -> str:
    """The details of what went wrong, for an assertion message."""
    lines = [f"statuses {dict(report.statuses)}"]
    for label, ids in (
        ("lost", report.lost),
        ("doubled", report.doubled),
        ("leaked permits", report.leaked_permits),
    ):
        for call_id in ids[:3]:
            lines.append(f"{label} {call_id}: {lookup(call_id)}")
    if report.orphans:
        lines.append(f"orphans (connection ids) {list(report.orphans)[:5]}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Outcome:
    report: AuditReport
    faults: int
    seconds: float
    died: int = 0  # worker or beat exits the scenario did not cause itself
    dialed_after_cancel: int = 0


def run_scenario(
    chaos: ChaosStack,
    prefix: str,
    *,
    rate_per_s: float,
    produce_s: float,
    recovery_s: float,
    inject: Callable[[], int],
    supervised: bool = False,
    request: Mapping[str, object] | Callable[[int], Mapping[str, object]] | None = None,
) -> Outcome:
    """Start the processes already added, produce calls while `inject` runs, recover, audit.

    `inject` runs while calls are being produced and returns how many faults it injected.
    Unsupervised (the default), a worker or beat that exits stays dead and is counted: the
    question of most scenarios is whether the processes themselves ride the fault out.
    """
    began = time.monotonic()
    chaos.wait_ready()
    if supervised:
        chaos.supervise()
    producer = chaos.producer(prefix, rate_per_s, produce_s, request)
    faults = inject()
    producer.join()
    report = chaos.settle(producer.ids, recovery_s)
    return Outcome(report, faults, time.monotonic() - began, died=chaos.died())
