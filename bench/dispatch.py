"""Dispatch speed: dialq against a bare Celery task sending the same POST, in the same run.

With free capacity and a sandbox that answers at once, measures for each system:
- latency: from the producer's enqueue call to the start request arriving at the sandbox
  (p50, p99), over calls enqueued one at a time;
- throughput: calls placed per second end to end for a burst (dialq: until every row is
  `connected` in the database; baseline: until the sandbox answered every start).
The two take turns, --rounds pairs of runs (the baseline first in every other round), and
each figure is printed as its median over the rounds, beside the median of the rounds' own
ratios: one pair on this shared machine swings by a third (the bare task alone measured 264 to
383 calls/s in one afternoon). The last line is JSON. The calls never end, so live-call
watching is slowed to once a minute: this measures dispatch alone.

    .venv/bin/python bench/dispatch.py [--latency-calls 100] [--burst 300] [--concurrency 8]
        [--rounds 3] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--count-calls 50]

On PostgreSQL it also prints the workers' statements and round trips per connected call, read
off the wire by a counting proxy (bench/pgwire.py) in a separate run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.harness import celery_worker, median, percentile, sandbox_process
from bench.pgwire import CountingProxy
from dialq import routing
from dialq.config import Settings
from dialq.ops.local_redis import PrivateRedis
from dialq.sandbox import SandboxControl
from dialq.store import Database
from dialq.store.tables import Call

APP_ID, APP_SECRET = "bench-app", "bench-secret"
NUMBER = "+14155550123"
BODY = {"operation": "start", "endpoint": {"type": "pstn", "phoneNumber": "14155550123"}}


def arrivals(control: SandboxControl) -> dict[str, float]:
    """call id -> when its (first) start request reached the sandbox."""
    seen: dict[str, float] = {}
    for entry in control.requests():
        if entry.get("operation") == "start" and entry.get("call_id"):
            seen.setdefault(entry["call_id"], entry["time"])
    return seen


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark stalled")
        time.sleep(0.02)


def cpu_s(pid: int) -> float:
    """The CPU seconds (user + system) process `pid` has used so far, off /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    send: Callable[[], str],
    done: Callable[[list[str]], bool],
    control: SandboxControl,
    latency_calls: int,
    burst: int,
    worker_pid: int,
) -> dict[str, float]:
    for _ in range(5):  # warm up connections, tokens, imports
        send()
    time.sleep(1.0)
    control.reset()
    sent_at: dict[str, float] = {}
    for _ in range(latency_calls):
        started = time.time()
        sent_at[send()] = started
        time.sleep(0.02)
    wait_until(lambda: len(arrivals(control).keys() & sent_at.keys()) == len(sent_at), 120)
    seen = arrivals(control)
    latencies = [seen[call_id] - t for call_id, t in sent_at.items()]
    control.reset()
    cpu_before = cpu_s(worker_pid)
    first = time.time()
    ids = [send() for _ in range(burst)]
    sent = time.time() - first
    wait_until(lambda: done(ids), 300)
    elapsed = time.time() - first
    worker_cpu_s = cpu_s(worker_pid) - cpu_before
    return {
        "latency_p50_ms": 1000 * median(latencies),
        "latency_p99_ms": 1000 * percentile(latencies, 0.99),
        "calls_per_s": burst / elapsed,
        # The producer's own rate: the burst cannot be placed faster than it is enqueued.
        "enqueued_per_s": burst / sent,
        # The worker's own CPU per call: steadier than calls/s on a shared 2-core machine, where
        # the producer, the sandbox, Redis and the database take turns with it.
        "worker_cpu_ms_per_call": 1000 * worker_cpu_s / burst,
    }


def run_baseline(
    redis_url: str, sandbox_url: str, control: SandboxControl, args: Any, workdir: Path
) -> dict[str, float]:
    env = {
        "BENCH_BROKER_URL": redis_url,
        "BENCH_SANDBOX_URL": sandbox_url,
        "BENCH_APP_ID": APP_ID,
        "BENCH_APP_SECRET": APP_SECRET,
    }
    os.environ.update(env)
    from bench.baseline_tasks import app  # reads BENCH_BROKER_URL at import

    def send() -> str:
        call_id = str(uuid.uuid4())
        app.send_task("bench.bare_start", args=[call_id, BODY], queue="bench.baseline")
        return call_id

    def done(ids: list[str]) -> bool:
        return len(arrivals(control).keys() & set(ids)) == len(ids)

    with celery_worker(
        "bench.baseline_tasks", "bench.baseline", env, workdir / "baseline.log", args.concurrency
    ) as worker:
        return measure(send, done, control, args.latency_calls, args.burst, worker.pid)


def dialq_env(redis_url: str, sandbox_url: str, args: Any, workdir: Path) -> dict[str, str]:
    return {
        "DIALQ_BROKER_URL": redis_url,
        "DIALQ_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.db'}",
        "DIALQ_SYMBL_BASE_URL": sandbox_url,
        "DIALQ_SYMBL_APP_ID": APP_ID,
        "DIALQ_SYMBL_APP_SECRET": APP_SECRET,
        "DIALQ_MAX_CONCURRENT_CALLS": "10000",
        # Calls here never end: at the default 5 s, watching hundreds of live calls would
        # compete with the dialing this benchmark measures (saturation.py measures that part).
        "DIALQ_WATCH_INTERVAL_S": "60",
    }


Producer = tuple[Callable[[], str], Callable[[list[str]], bool]]
_producers: dict[str, Producer] = {}


def dialq_producer(env: dict[str, str]) -> Producer:
    """The producer's enqueue, and the check that a burst's calls are all connected: made
    once per database and kept for every round (each would otherwise open a pool of its own)."""
    made = _producers.get(env["DIALQ_DATABASE_URL"])
    if made is None:
        made = _producers[env["DIALQ_DATABASE_URL"]] = _make_producer(env)
    return made


def _make_producer(env: dict[str, str]) -> Producer:
    from dialq.api import enqueue_call

    os.environ.update(env)
    settings = Settings()
    db = Database(settings.database_url_resolved)
    db.upgrade()

    def send() -> str:
        return enqueue_call({"phone_number": NUMBER}, settings=settings).id

    def done(ids: list[str]) -> bool:
        # A count over the burst's own ids: loading every connected row each poll would take
        # a core from the worker being measured (calls here never end, so they pile up).
        query = (
            select(func.count())
            .select_from(Call)
            .where(Call.id.in_(ids), Call.status == "connected")
        )
        with db.sessions() as session:
            return session.scalar(query) == len(ids)

    return send, done


def run_dialq(
    redis_url: str, sandbox_url: str, control: SandboxControl, args: Any, workdir: Path
) -> dict[str, float]:
    env = dialq_env(redis_url, sandbox_url, args, workdir)
    send, done = dialq_producer(env)
    queues = ",".join(routing.ALL_QUEUES)
    with celery_worker(
        "dialq.worker", queues, env, workdir / "dialq.log", args.concurrency
    ) as worker:
        return measure(send, done, control, args.latency_calls, args.burst, worker.pid)


def count_round_trips(env: dict[str, str], args: Any, workdir: Path) -> dict[str, float]:
    """The workers' PostgreSQL statements and round trips per connected call, read off the
    wire by a counting proxy, in a run of its own (the proxy's hop would slow the one timed)."""
    send, done = dialq_producer(env)
    url = make_url(env["DIALQ_DATABASE_URL"])
    with CountingProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        worker_env = {**env, "DIALQ_DATABASE_URL": proxy.url_for(env["DIALQ_DATABASE_URL"])}
        queues = ",".join(routing.ALL_QUEUES)
        log = workdir / "dialq-counted.log"
        with celery_worker("dialq.worker", queues, worker_env, log, args.concurrency):
            warm = [send() for _ in range(5)]
            wait_until(lambda: done(warm), 60)
            time.sleep(1.0)
            proxy.reset()
            ids = [send() for _ in range(args.count_calls)]
            wait_until(lambda: done(ids), 120)
            time.sleep(1.0)  # what a dial writes after the row reads connected
            counts = proxy.counts()
    return {
        "pg_statements_per_call": counts["statements"] / args.count_calls,
        "pg_round_trips_per_call": counts["round_trips"] / args.count_calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-calls", type=int, default=100)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="baseline/dialq pairs, interleaved")
    parser.add_argument("--database-url", default="", help="default: a SQLite file")
    parser.add_argument(
        "--count-calls", type=int, default=50, help="PostgreSQL: calls in the counted run (0: none)"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dialq-bench-"))
    redis = PrivateRedis().start()
    rounds: list[tuple[dict[str, float], dict[str, float]]] = []
    try:
        sandbox_args = [
            "--max-concurrent",
            "100000",
            "--app-id",
            APP_ID,
            "--app-secret",
            APP_SECRET,
        ]
        with sandbox_process(*sandbox_args, log=workdir / "sandbox.log") as (url, control):
            for number in range(args.rounds):
                rounds.append(run_round(number, redis.url, url, control, args, workdir))
            counted: dict[str, float] = {}
            if args.database_url.startswith("postgresql") and args.count_calls > 0:
                control.reset()
                counted = count_round_trips(dialq_env(redis.url, url, args, workdir), args, workdir)
    finally:
        redis.stop()
    report(rounds, counted)


def run_round(
    number: int, redis_url: str, sandbox_url: str, control: SandboxControl, args: Any, workdir: Path
) -> tuple[dict[str, float], dict[str, float]]:
    """One baseline run and one dialq run, in turns (the baseline first in even rounds), so
    a slow spell of this shared machine falls on both alike over the rounds."""
    figures: dict[str, dict[str, float]] = {}
    order = ("baseline", "dialq") if number % 2 == 0 else ("dialq", "baseline")
    for system in order:
        control.reset()
        run = run_baseline if system == "baseline" else run_dialq
        figures[system] = run(redis_url, sandbox_url, control, args, workdir)
    return figures["dialq"], figures["baseline"]


def report(
    rounds: list[tuple[dict[str, float], dict[str, float]]], counted: dict[str, float]
) -> None:
    """Each round's throughput, then every figure's median over the rounds beside the
    median of the rounds' own ratios (a ratio is taken within a round, never across)."""
    for number, (dialq, baseline) in enumerate(rounds, start=1):
        print(
            f"round {number}: calls/s {dialq['calls_per_s']:.1f} vs {baseline['calls_per_s']:.1f}"
            f" ({dialq['calls_per_s'] / baseline['calls_per_s']:.2f}); worker CPU ms/call"
            f" {dialq['worker_cpu_ms_per_call']:.1f} vs {baseline['worker_cpu_ms_per_call']:.1f}"
        )
    title = f"median of {len(rounds)} rounds"
    print(f"{title:28}{'dialq':>12}{'baseline':>12}{'ratio':>10}")
    compared = ("latency_p50_ms", "latency_p99_ms", "calls_per_s", "enqueued_per_s")
    summary: dict[str, dict[str, float]] = {"dialq": {}, "baseline": {}, "ratio": {}}
    for key in (*compared, "worker_cpu_ms_per_call"):
        ours = median([dialq[key] for dialq, _ in rounds])
        theirs = median([baseline[key] for _, baseline in rounds])
        ratio = median([d[key] / b[key] if b[key] else float("nan") for d, b in rounds])
        summary["dialq"][key], summary["baseline"][key], summary["ratio"][key] = ours, theirs, ratio
        print(f"{key:28}{ours:12.1f}{theirs:12.1f}{ratio:10.2f}")
    for key, value in counted.items():  # the bare task has no database: nothing to compare with
        summary["dialq"][key] = value
        print(f"{key:28}{value:12.1f}{'-':>12}{'-':>10}")
    print(json.dumps({**summary, "rounds": [{"dialq": d, "baseline": b} for d, b in rounds]}))


if __name__ == "__main__":
    main()
