"""Helpers for schedule tests: a settable clock, a recording publisher, beat processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import text

from dialq import routing
from dialq.capacity import Capacity
from dialq.store import Database
from tests.stack import Stack

SCHEDULE_TABLES = ("schedule_occurrences", "schedules", "attempts", "events", "calls")


def empty_tables(db: Database) -> None:
    """The PostgreSQL schema is shared by the run: each test starts from empty tables."""
    with db.transaction() as session:
        for table in SCHEDULE_TABLES:
            session.execute(text(f"DELETE FROM {table}"))


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingPublisher:
    """Stands in for the broker in store tests: remembers every dial message in `sent`, and
    every other task message in `tasks`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []
        self.tasks: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()

    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        with self._lock:
            if task == routing.DIAL:
                self.sent.append((call_id, countdown_s))
            else:
                self.tasks.append((task, call_id, countdown_s))


def no_dialing(account: str, on_attempt: Callable[..., None]) -> Any:
    raise AssertionError("store tests never dial")


def unused_capacity() -> Capacity:
    """Enqueueing takes no permit: a client that never connects, so a dial would fail loudly."""
    return Capacity(redis.Redis(host="127.0.0.1", port=9), {})


def start_beat(stack: Stack, index: int, timeout_s: float = 30.0) -> subprocess.Popen[bytes]:
    """A real `celery beat` process with its own state file; returns once it has started."""
    log = stack.workdir / f"beat-{index}.log"
    args = [
        sys.executable, "-m", "celery", "-A", "dialq.worker", "beat", "--loglevel", "INFO",
        "-s", str(stack.workdir / f"beat-{index}-schedule"), "--pidfile", "",
    ]  # fmt: skip
    sink = log.open("wb")
    process = subprocess.Popen(args, env=stack.process_env(), stdout=sink, stderr=subprocess.STDOUT)
    sink.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"beat exited: {log.read_text()[-3000:]}")
        if b"Sending due task dispatch-schedules" in log.read_bytes():
            return process
        time.sleep(0.1)
    raise RuntimeError(f"beat not ticking after {timeout_s}s: {log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def beat_logs(workdir: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(workdir.glob("beat-*.log")))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
