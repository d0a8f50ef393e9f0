"""`dialq worker` and `dialq beat`: Celery processes that come back when they die.

A worker is four Celery workers, one per kind of work, each with its own thread pool: a
receiver that drips bytes can hold every webhook thread without delaying a single dial, a
backlog of dials never starves the lifecycle watches that end calls, and neither waits behind
the harvests of ended calls. Each runs as a child of
this process, which restarts any child that exits (kombu has exited on broker loss before; an
out-of-memory kill is another way out) with a growing pause, so a host without systemd or
compose still keeps working. SIGTERM and SIGINT go on to every child, which finish the tasks
in hand (Celery's warm shutdown) before this process exits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from dialq import routing
from dialq.backoff import backoff_s

log = logging.getLogger("dialq.supervisor")

RESTART_BASE_S = 1.0
RESTART_MAX_S = 30.0
# A child that ran this long before exiting gets its next restart at once again.
HEALTHY_AFTER_S = 60.0
POLL_S = 0.2
PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass(frozen=True)
class Pool:
    """A kind of work with a Celery worker of its own."""

    name: str
    queues: tuple[str, ...]
    concurrency: int
    # Added to the supervisor's niceness (nice(2)): background work yields the CPU to the
    # work that keeps the account's slots busy when the host is saturated, and catches up
    # when it is not (it is never starved: the kernel shares by weight, it does not stop it).
    nice: int = 0


# Harvesting insights after a call is deferrable: on a busy host it must not take the CPU from
# the dials and watches that fill and free slots (it had 27 % of the workers' CPU at N 50).
BACKGROUND_NICE = 10

# Sweeps ride with the lifecycle pool: they are short, one per tick, and must not wait behind
# a dial backlog (they are what hands free permits to waiting calls when a message was lost).
POOLS = (
    Pool("dial", (routing.QUEUE_DIAL,), 8),
    Pool("lifecycle", (routing.QUEUE_LIFECYCLE, routing.QUEUE_SWEEP), 4),
    Pool("webhooks", (routing.QUEUE_WEBHOOKS,), 4),
    # Harvests after the call: they must not delay the watches that free slots (nor webhooks).
    Pool("insights", (routing.QUEUE_INSIGHTS,), 4, nice=BACKGROUND_NICE),
)
POOL_NAMES = tuple(pool.name for pool in POOLS)


def celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "dialq.worker", *args]


def worker_argv(pool: Pool, extra: Sequence[str] = ()) -> list[str]:
    return celery_argv(
        "worker", "-Q", ",".join(pool.queues), "-c", str(pool.concurrency),
        "-n", f"{pool.name}@%h", "--loglevel", "INFO", *extra,
    )  # fmt: skip


def metrics_env(base_port: int, index: int) -> dict[str, str]:
    """Each pool serves its own /metrics: the configured port, then the next ones."""
    return {"DIALQ_METRICS_PORT": str(base_port + index)} if base_port else {}


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    nice: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    failures: int = 0  # exits in a row that came too soon
    restarts: int = 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Keeps its children running until told to stop; then stops them and waits."""

    def __init__(
        self,
        children: Sequence[Child],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.children = list(children)
        self._clock = clock
        self._rng = rng or random.Random()
        self._stopping = False

    def stop(self, *_: object) -> None:
        if self._stopping:
            # A second Ctrl-C: the user does not want to wait for tasks in hand.
            self._signal_all(signal.SIGKILL)
            return
        self._stopping = True
        self._signal_all(signal.SIGTERM)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        try:
            while not self._stopping:
                self.step()
                time.sleep(POLL_S)
        finally:
            # Even if this loop failed, no child is left running without its supervisor.
            if not self._stopping:
                self.stop()
        for child in self.children:
            if child.process is not None:
                child.process.wait()
        return 0

    def step(self) -> None:
        """Start what is due, and note what exited."""
        now = self._clock()
        for child in self.children:
            if child.process is None:
                if now >= child.restart_at:
                    self._spawn(child, now)
            elif child.process.poll() is not None:
                self._exited(child, now)

    def _spawn(self, child: Child, now: float) -> None:
        env = {**os.environ, **child.env}
        # A session of its own: a terminal's Ctrl-C reaches only this process, which passes on
        # one SIGTERM; a second signal from the terminal would turn Celery's warm shutdown cold.
        child.process = subprocess.Popen(
            child.argv, env=env, start_new_session=True, preexec_fn=child_setup(child.nice)
        )
        child.started_at = now
        log.info("%s started (pid %d)", child.name, child.process.pid, extra={"pool": child.name})

    def _exited(self, child: Child, now: float) -> None:
        assert child.process is not None
        code = child.process.returncode
        child.process = None
        child.restarts += 1
        ran_s = now - child.started_at
        child.failures = 1 if ran_s >= HEALTHY_AFTER_S else child.failures + 1
        pause = backoff_s(
            child.failures, self._rng, base_s=RESTART_BASE_S, max_s=RESTART_MAX_S, jitter="equal"
        )
        child.restart_at = now + pause
        log.error(
            "%s exited (code %s) after %.0f s; restarting in %.1f s",
            child.name,
            code,
            ran_s,
            pause,
            extra={"pool": child.name, "exit_code": code, "restarts": child.restarts},
        )

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop()

    def _signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.running():
                assert child.process is not None
                child.process.send_signal(signum)


def child_setup(nice: int) -> Callable[[], None]:
    """What a child runs before exec: its niceness, and dying with the supervisor."""

    def setup() -> None:
        if nice:
            os.nice(nice)
        _die_with_parent()

    return setup


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it (a warm shutdown) when this supervisor dies, even by
    SIGKILL, so no worker is left running with nobody to stop or restart it (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def worker_children(pools: Sequence[Pool], extra: Sequence[str], metrics_port: int) -> list[Child]:
    return [
        Child(pool.name, worker_argv(pool, extra), metrics_env(metrics_port, index), nice=pool.nice)
        for index, pool in enumerate(pools)
    ]
