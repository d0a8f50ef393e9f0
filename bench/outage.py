"""An API outage behind a large backlog: what waiting costs, and how fast the backlog drains.

One sandbox (limit N, every call lasting D seconds), a private Redis, PostgreSQL (a fresh
schema) or SQLite, two dialq workers and beat, the circuit at its defaults (5 s cooldown doubling
to 30 s). Every start request is answered 503 from before the first call; M calls are enqueued;
the outage lasts `--outage` seconds, then the API comes back. Measured:
- calls failed (expected 0: calls wait for the API at no cost to their budget);
- dial deliveries per second while the circuit is open, over the whole outage and over its
  last part (after `--settle` seconds, once the cooldown has reached its cap), from the workers'
  logs, and start requests the API received meanwhile (the probes);
- time from the API's return to the last call started and to the last call ended, beside the
  ideal at full capacity: (ceil(M/N) - 1) x D to start them all, ceil(M/N) x D to end them.

    .venv/bin/python bench/outage.py [--calls 2000] [--limit 50] [--duration 2]
        [--outage 150] [--settle 70] [--sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import celery_process, pg_schema, sandbox_process
from dialq import routing
from dialq.ops.local_redis import PrivateRedis
from dialq.sandbox import SandboxControl

APP_ID, APP_SECRET = "outage-app", "outage-secret"
START = {"path": "/v1/endpoint:connect", "operation": "start"}


def deliveries(logs: list[Path]) -> int:
    """Dial deliveries so far: the workers' `Task dialq.dial[...] received` lines."""
    return sum(
        1
        for log in logs
        for line in log.read_text(errors="replace").splitlines()
        if f"Task {routing.DIAL}[" in line and "received" in line
    )


def starts(control: SandboxControl) -> int:
    return sum(1 for r in control.requests() if r.get("operation") == "start")


def wait_until(done: Callable[[], bool], timeout_s: float) -> float:
    began = time.monotonic()
    while not done():
        if time.monotonic() - began > timeout_s:
            return float("inf")
        time.sleep(0.5)
    return time.monotonic() - began


def statuses(settings: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from dialq.store import Database
    from dialq.store.tables import Call

    db = Database(settings.database_url_resolved)
    try:
        with db.sessions() as session:
            rows = session.execute(select(Call.status, func.count()).group_by(Call.status))
            return {str(status): int(count) for status, count in rows}
    finally:
        db.dispose()


def run(
    args: Any, workdir: Path, redis_url: str, url: str, control: SandboxControl
) -> dict[str, Any]:
    env = {
        "DIALQ_BROKER_URL": redis_url,
        "DIALQ_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'outage.db'}",
        "DIALQ_DATA_DIR": str(workdir / "data"),
        "DIALQ_SYMBL_BASE_URL": url,
        "DIALQ_SYMBL_APP_ID": APP_ID,
        "DIALQ_SYMBL_APP_SECRET": APP_SECRET,
        "DIALQ_MAX_CONCURRENT_CALLS": str(args.limit),
        "DIALQ_WATCH_INTERVAL_S": "0.5",
        "DIALQ_DIAL_DEADLINE_S": "7200",
    }
    os.environ.update(env)
    from dialq.api import enqueue_call
    from dialq.config import Settings
    from dialq.store import Database

    settings = Settings()
    Database(settings.database_url_resolved).upgrade()
    queues = ",".join(routing.ALL_QUEUES)
    logs = [workdir / f"worker-{n}.log" for n in range(2)]
    with contextlib.ExitStack() as stack:
        for n, log in enumerate(logs):
            stack.enter_context(
                celery_process(
                    ["-A", "dialq.worker", "worker", "-Q", queues, "-P", "threads", "-c", "8",
                     "-n", f"w{n}@%h", "--loglevel", "INFO", "--without-gossip",
                     "--without-mingle"],
                    env, log, b" ready.",
                )
            )  # fmt: skip
        stack.enter_context(
            celery_process(
                ["-A", "dialq.worker", "beat", "-s", str(workdir / "beat-schedule"), "--loglevel",
                 "INFO"],
                env, workdir / "beat.log", b"beat: Starting",
            )
        )  # fmt: skip
        refuse = {"type": "status", "status": 503}
        control.script([{"match": START, "times": 100_000_000, "action": refuse}])
        outage_began = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(
                lambda i: enqueue_call({"phone_number": "+14155550123"}, settings=settings),
                range(args.calls),
            ))  # fmt: skip
        enqueued_s = time.monotonic() - outage_began
        time.sleep(max(0.0, args.settle - (time.monotonic() - outage_began)))
        mark, mark_starts, mark_at = deliveries(logs), starts(control), time.monotonic()
        time.sleep(max(0.0, args.outage - (time.monotonic() - outage_began)))
        total, total_starts, ended_at = deliveries(logs), starts(control), time.monotonic()
        control.clear_faults()
        back = time.monotonic()

        def sandbox_calls() -> list[dict[str, Any]]:
            return [c for c in control.calls() if c.get("started_at") is not None]

        started_s = wait_until(lambda: len(sandbox_calls()) >= args.calls, args.timeout)
        ended_s = wait_until(
            lambda: all(c["ended_at"] is not None for c in sandbox_calls()), args.timeout
        )
        ended_s += started_s
        final = statuses(settings)
    rounds = math.ceil(args.calls / args.limit)
    outage_s = ended_at - outage_began
    window_s = ended_at - mark_at
    return {
        "calls": args.calls,
        "enqueue_s": round(enqueued_s, 1),
        "outage_s": round(outage_s, 1),
        "failed": final.get("failed", 0),
        "statuses": final,
        "deliveries_per_s_outage": round(total / outage_s, 1),
        "deliveries_per_s_capped": round((total - mark) / window_s, 1),
        "starts_during_outage": total_starts,
        "starts_in_capped_window": total_starts - mark_starts,
        "capped_window_s": round(window_s, 1),
        "all_started_s": round(started_s, 1),
        "ideal_all_started_s": (rounds - 1) * args.duration,
        "all_ended_s": round(ended_s, 1),
        "ideal_all_ended_s": rounds * args.duration,
        "since_back_s": round(time.monotonic() - back, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--outage", type=float, default=150.0)
    parser.add_argument("--settle", type=float, default=70.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    args.database_url = ""
    workdir = Path(tempfile.mkdtemp(prefix="dialq-outage-"))
    sandbox_args = [
        "--max-concurrent", str(args.limit), "--call-seconds", str(args.duration),
        "--app-id", APP_ID, "--app-secret", APP_SECRET,
    ]  # fmt: skip
    with contextlib.ExitStack() as stack:
        if not args.sqlite:
            admin = os.environ.get("DIALQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
            args.database_url = stack.enter_context(pg_schema(admin))
        redis = PrivateRedis().start()
        stack.callback(redis.stop)
        url, control = stack.enter_context(
            sandbox_process(*sandbox_args, log=workdir / "sandbox.log")
        )
        result = run(args, workdir, redis.url, url, control)
    print(
        f"M={args.calls} calls behind a {result['outage_s']:.0f}s outage (503), N={args.limit}, "
        f"D={args.duration}s, 2 workers x 8 threads, "
        f"{'SQLite' if args.sqlite else 'PostgreSQL'}; logs in {workdir}"
    )
    print(
        f"failed {result['failed']}; dial deliveries/s while open: "
        f"{result['deliveries_per_s_outage']} (whole outage), "
        f"{result['deliveries_per_s_capped']} (last {result['capped_window_s']}s, cooldown "
        f"capped); start requests (probes): {result['starts_during_outage']} in the outage, "
        f"{result['starts_in_capped_window']} in its last part"
    )
    print(
        f"after the API returned: all started in {result['all_started_s']}s "
        f"(ideal {result['ideal_all_started_s']}s), all ended in {result['all_ended_s']}s "
        f"(ideal {result['ideal_all_ended_s']}s)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
