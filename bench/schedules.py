"""Schedule dispatch: what one tick costs as stored schedules grow, and how late starts are.

1. Tick cost: with 100, 10,000 and 100,000 stored schedules (all but --due of them not due for
   days), the time one dispatcher tick takes and the SQL statements it runs, each beside the
   100-schedule tick of the same run (ratio), and against the tick interval (ratio).
2. Lateness: --schedules per-second schedules run by a real beat, worker, Redis and sandbox for
   --duration seconds; lateness = when the start request reached the sandbox minus the
   occurrence's planned instant (p50, p99).
The last line printed is JSON.

    .venv/bin/python bench/schedules.py [--duration 90] [--schedules 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from sqlalchemy import delete, event, insert, update

from bench.harness import ROOT, celery_worker, median, percentile, sandbox_process
from dialq import routing
from dialq.calls.service import CallService
from dialq.capacity import Capacity
from dialq.config import Settings
from dialq.ops.local_redis import PrivateRedis
from dialq.schedules.api import upsert_schedule
from dialq.schedules.occurrences import ScheduleDispatcher
from dialq.store import Database
from dialq.store import schedules_repo as repo
from dialq.store.schedule_tables import Schedule
from dialq.store.tables import Base

APP_ID, APP_SECRET = "bench-app", "bench-secret"
CALL = {"phone_number": "+14155550123"}
SIZES = (100, 10_000, 100_000)


class NullPublisher:
    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        """The tick's own cost is measured: the broker is out of the picture."""


def no_dialing(account: str, on_attempt: Any) -> Any:
    raise AssertionError("the tick bench never dials")


def clear(db: Database, *tables: str) -> None:
    with db.transaction() as session:
        for table in tables:
            session.execute(delete(Base.metadata.tables[table]))


def fill(db: Database, total: int, due: int, now: datetime) -> list[str]:
    """`total` schedules, `due` of them due now; returns the due ones' ids."""
    clear(db, "schedule_occurrences", "schedules", "attempts", "events", "calls")
    rows: list[dict[str, Any]] = []
    for index in range(total):
        is_due = index < due
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "name": f"s{index:06d}",
                "source": "api",
                "template": CALL,
                # The due ones are one-shots, so a tick places exactly `due` calls.
                "kind": "at" if is_due else "cron",
                "cron": None if is_due else "0 3 * * *",
                "at": now if is_due else None,
                "timezone": "UTC",
                "timing_fingerprint": "bench",
                "overlap": "allow",
                "enabled": True,
                # Most are due days from now, spread out as real daily schedules would be.
                "next_due_at": now if is_due else now + timedelta(days=1, seconds=index),
                "created_at": now,
                "updated_at": now,
            }
        )
    with db.transaction() as session:
        for start in range(0, total, 5000):
            session.execute(insert(Schedule), rows[start : start + 5000])
    return [row["id"] for row in rows[:due]]


def measure_tick(
    db: Database, settings: Settings, total: int, due: int, repeats: int
) -> dict[str, float]:
    # Enqueueing takes no permit: a Redis client that never connects stands in for capacity.
    capacity = Capacity(redis.Redis(host="127.0.0.1", port=9), {})
    calls = CallService(settings, db, no_dialing, NullPublisher(), capacity=capacity)
    dispatcher = ScheduleDispatcher(settings, db, calls.enqueue)
    due_ids = fill(db, total, due, datetime.now(UTC))
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    times: list[float] = []
    queries: list[int] = []
    idle_times: list[float] = []
    idle_queries: list[int] = []
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=repeats + 1)
    for repeat in range(repeats + 1):
        # The same schedules due again, each time at a new whole second (a new occurrence key).
        instant = first + timedelta(seconds=repeat)
        with db.transaction() as session:
            session.execute(
                update(Schedule)
                .where(Schedule.id.in_(due_ids))
                .values(at=instant, next_due_at=instant)
            )
        for bucket_t, bucket_q in ((times, queries), (idle_times, idle_queries)):
            event.listen(db.engine, "before_cursor_execute", count)
            statements, started = 0, time.perf_counter()
            dispatcher.tick()
            bucket_t.append(1000 * (time.perf_counter() - started))
            event.remove(db.engine, "before_cursor_execute", count)
            bucket_q.append(statements)
    # The first round warms connections and caches: it is not counted.
    times, queries = times[1:], queries[1:]
    idle_times, idle_queries = idle_times[1:], idle_queries[1:]
    return {
        "tick_ms": median(times),
        "queries": median(queries),
        "idle_tick_ms": median(idle_times),
        "idle_queries": median(idle_queries),
    }


def tick_costs(args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, float]]:
    url = args.database_url or f"sqlite:///{workdir / 'ticks.db'}"
    settings = Settings(database_url=url, max_concurrent_calls=10_000)
    db = Database(url)
    db.upgrade()
    try:
        return {str(n): measure_tick(db, settings, n, args.due, args.repeats) for n in SIZES}
    finally:
        db.dispose()


@contextmanager
def beat(env: dict[str, str], workdir: Path) -> Iterator[None]:
    log = workdir / "beat.log"
    command = [sys.executable, "-m", "celery", "-A", "dialq.worker", "beat", "-s",
               str(workdir / "beat-schedule"), "--loglevel", "INFO"]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=sink,
            stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        try:
            yield
        finally:
            process.terminate()
            process.wait(timeout=20)


def lateness(args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    redis = PrivateRedis().start()
    sandbox_args = ["--max-concurrent", "100000", "--app-id", APP_ID, "--app-secret", APP_SECRET,
                    "--call-seconds", "1"]  # fmt: skip
    try:
        with sandbox_process(*sandbox_args, log=workdir / "sandbox.log") as (url, control):
            env = {
                "DIALQ_BROKER_URL": redis.url,
                "DIALQ_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'late.db'}",
                "DIALQ_SYMBL_BASE_URL": url,
                "DIALQ_SYMBL_APP_ID": APP_ID,
                "DIALQ_SYMBL_APP_SECRET": APP_SECRET,
                "DIALQ_MAX_CONCURRENT_CALLS": "10000",
            }
            os.environ.update(env)
            settings = Settings()
            db = Database(settings.database_url_resolved)
            db.upgrade()
            clear(db, "schedule_occurrences", "schedules")
            queues = ",".join(routing.ALL_QUEUES)
            with (
                celery_worker("dialq.worker", queues, env, workdir / "worker.log", 16),
                beat(env, workdir),
            ):
                time.sleep(3)  # beat's first ticks, token fetch, imports
                for index in range(args.schedules):
                    spec = {"name": f"late-{index}", "every": 1, "overlap": "allow", "call": CALL}
                    upsert_schedule(spec, settings=settings)
                time.sleep(args.duration)
            return summarise(db, control.requests())
    finally:
        redis.stop()


def summarise(db: Database, requests: list[dict[str, Any]]) -> dict[str, float]:
    arrivals = {r["call_id"]: r["time"] for r in requests if r.get("operation") == "start"}
    late: list[float] = []
    outcomes: dict[str, int] = {}
    with db.sessions() as session:
        for schedule in repo.list_schedules(session):
            for row in repo.recent_occurrences(session, schedule.id, limit=100_000):
                outcomes[row.outcome] = outcomes.get(row.outcome, 0) + 1
                if row.call_id in arrivals:
                    late.append(arrivals[row.call_id] - row.occurrence_at.timestamp())
    return {
        "starts": len(late),
        "lateness_p50_ms": 1000 * median(late),
        "lateness_p99_ms": 1000 * percentile(late, 0.99),
        "lateness_max_ms": 1000 * max(late, default=float("nan")),
        **{f"occurrences_{k.replace(': ', '_')}": float(v) for k, v in outcomes.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=90, help="lateness run, seconds")
    parser.add_argument("--schedules", type=int, default=5, help="per-second schedules")
    parser.add_argument("--due", type=int, default=10, help="schedules due in each tick")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--database-url", default="", help="default: SQLite files")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dialq-bench-schedules-"))
    interval_ms = 1000 * Settings().schedule_tick_s
    costs = tick_costs(args, workdir)
    base = costs[str(SIZES[0])]
    print(f"tick with {args.due} due (interval {interval_ms:.0f} ms)")
    print(f"{'stored':>10}{'tick ms':>10}{'queries':>9}{'vs 100':>8}{'of interval':>13}"
          f"{'idle ms':>9}{'idle q':>8}")  # fmt: skip
    for size, cost in costs.items():
        print(
            f"{size:>10}{cost['tick_ms']:10.1f}{cost['queries']:9.0f}"
            f"{cost['tick_ms'] / base['tick_ms']:8.2f}{cost['tick_ms'] / interval_ms:13.3f}"
            f"{cost['idle_tick_ms']:9.2f}{cost['idle_queries']:8.0f}"
        )
    late = lateness(args, workdir)
    print(
        f"lateness of starts over {args.duration:.0f}s, {args.schedules} per-second schedules: "
        f"{late['starts']:.0f} starts, p50 {late['lateness_p50_ms']:.0f} ms, "
        f"p99 {late['lateness_p99_ms']:.0f} ms, max {late['lateness_max_ms']:.0f} ms"
    )
    print(json.dumps({"tick": costs, "interval_ms": interval_ms, "lateness": late}))


if __name__ == "__main__":
    main()
