"""Saturation: does the account's concurrent-call limit stay busy? dialq against plain retry.

One sandbox (limit N, every call lasting D seconds, ended by the sandbox), one Redis; two
systems measured in turn on the same workload of M calls enqueued at once:
- dialq as built (permits, waiting queue, end-of-call poll every 0.25 s);
- baseline: a Celery task that POSTs the start with `autoretry_for` on 429,
  `retry_backoff=True`, `retry_jitter=True`, and nothing else.
Makespan runs from the first enqueue to the end of the last call (the sandbox's own times);
the ideal is ceil(M/N) x D. Writes bench/results/saturation.json and saturation.png; the
last line printed is the JSON.

    .venv/bin/python bench/saturation.py [--limit 8] [--calls 64] [--duration 2]
        [--workers 2] [--postgres] [--no-baseline] [--accounts 1] [--watch-page 8]
        [--watch-interval 0.25]

`--workers` runs that many dialq workers and a beat (the watchdog ticks as in production); each
worker is what `dialq worker` runs, a Celery worker per kind of work (dial, lifecycle and
sweeps, webhooks), unless `--single` puts every queue on one Celery worker;
`--postgres` puts dialq's database in a fresh schema of the local PostgreSQL; `--accounts K`
spreads the calls over K accounts of `--limit` each (the sandbox's limit is per app id).
Skipped deliveries per started call counts dial deliveries that did nothing (the call was not
theirs to start): the cost of waking calls that cannot go. A handover is the time from the end
of a call to the start of the call that took its slot (the k-th start past the first N against
the k-th end): what a turn of a slot costs beyond the call itself, mostly the look that sees the
end (on average half of --watch-interval late).
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
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    celery_process,
    celery_worker,
    median,
    percentile,
    pg_schema,
    sandbox_process,
)
from dialq import routing
from dialq.ops.local_redis import PrivateRedis
from dialq.ops.supervisor import POOLS
from dialq.sandbox import SandboxControl

APP_ID, APP_SECRET = "bench-app", "bench-secret"
BODY = {"operation": "start", "endpoint": {"type": "pstn", "phoneNumber": "14155550123"}}
RESULTS = Path(__file__).resolve().parent / "results"


def wait_all_ended(
    control: SandboxControl, ids: set[str], timeout_s: float
) -> list[dict[str, Any]]:
    """Every call, once all have ended. The whole list is read only when nothing is live (at
    most every 2 s): read every 0.1 s, its JSON (10,000 calls of it) took the sandbox's event
    loop from the calls being measured, more so the larger the run."""
    deadline = time.monotonic() + timeout_s
    last_full = 0.0
    while time.monotonic() < deadline:
        if control.live_count() == 0 and time.monotonic() - last_full >= 2.0:
            last_full = time.monotonic()
            calls = [c for c in control.calls() if c.get("call_id") in ids]
            if len(calls) == len(ids) and all(c["ended_at"] is not None for c in calls):
                return calls
        time.sleep(0.1)
    raise TimeoutError(f"not every call ended within {timeout_s}s")


def summarise(
    calls: list[dict[str, Any]],
    sent_at: dict[str, float],
    first: float,
    args: Any,
    control: SandboxControl,
) -> dict[str, Any]:
    ideal = math.ceil(args.calls / (args.limit * args.accounts)) * args.duration
    makespan = max(c["ended_at"] for c in calls) - first
    busy = sum(c["ended_at"] - c["started_at"] for c in calls)
    waits = [c["started_at"] - sent_at[c["call_id"]] for c in calls]
    starts = [r for r in control.requests() if r.get("operation") == "start"]
    # The k-th start past the first `slots` took the slot the (k - slots)-th end freed: the gap
    # is what one turn of a slot costs (the end seen by a look, the permit handed on, the dial).
    slots = args.limit * args.accounts
    began = sorted(c["started_at"] for c in calls)
    ended = sorted(c["ended_at"] for c in calls)
    handovers = [b - e for b, e in zip(began[slots:], ended, strict=False)]
    return {
        "makespan_s": round(makespan, 3),
        "makespan_ratio": round(makespan / ideal, 3),
        "utilization": round(busy / (args.limit * args.accounts * makespan), 3),
        "http_429": sum(1 for r in starts if r.get("status") == 429),
        "wait_p50_s": round(median(waits), 3),
        "wait_p99_s": round(percentile(waits, 0.99), 3),
        "first_start_s": round(began[0] - first, 3),
        "handover_p50_s": round(median(handovers), 3) if handovers else 0.0,
        "handover_p99_s": round(percentile(handovers, 0.99), 3) if handovers else 0.0,
        "timeline": [(c["started_at"] - first, c["ended_at"] - first) for c in calls],
    }


def run_dialq(
    redis_url: str, url: str, control: SandboxControl, args: Any, workdir: Path
) -> dict[str, Any]:
    env = {
        "DIALQ_BROKER_URL": redis_url,
        "DIALQ_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'saturation.db'}",
        "DIALQ_SYMBL_BASE_URL": url,
        "DIALQ_SYMBL_APP_ID": APP_ID,
        "DIALQ_SYMBL_APP_SECRET": APP_SECRET,
        "DIALQ_MAX_CONCURRENT_CALLS": str(args.limit),
        "DIALQ_WATCH_INTERVAL_S": str(args.watch_interval),
        "DIALQ_WATCH_PAGE": str(args.watch_page),
        # A 10,000-call backlog at 50 slots takes minutes to drain: no call's deadline is hit.
        "DIALQ_DIAL_DEADLINE_S": str(max(3600, int(args.timeout * 2))),
    }
    if args.accounts > 1:
        env["DIALQ_ACCOUNTS"] = json.dumps(
            {
                f"acct{n}": {
                    # One sandbox app whose limit is the sum: each account's own permits bind.
                    "app_id": APP_ID,
                    "app_secret": APP_SECRET,
                    "base_url": url,
                    "max_concurrent_calls": args.limit,
                }
                for n in range(args.accounts)
            }
        )
    os.environ.update(env)
    from dialq.api import enqueue_call
    from dialq.config import Settings
    from dialq.store import Database

    settings = Settings()
    # The measured accounts only: the settings also hold `default` (DIALQ_SYMBL_APP_ID), and
    # calls spread over it too would hold 2 more permits than the sandbox app has slots.
    accounts = [f"acct{n}" for n in range(args.accounts)] if args.accounts > 1 else ["default"]
    Database(settings.database_url_resolved).upgrade()
    queues = ",".join(routing.ALL_QUEUES)
    with contextlib.ExitStack() as stack:
        logs = []
        for n in range(args.workers):
            for name, worker_args, nice in _worker_layout(args, queues, n):
                log = workdir / f"dialq-{n}-{name}.log"
                logs.append(log)
                stack.enter_context(celery_process(worker_args, env, log, b" ready.", nice=nice))
        if args.workers > 1:
            schedule = workdir / "beat-schedule"
            stack.enter_context(
                celery_process(
                    ["-A", "dialq.worker", "beat", "-s", str(schedule), "--loglevel", "INFO"],
                    env, workdir / "beat.log", b"beat: Starting",
                )
            )  # fmt: skip
        # Warm-up calls (imports, tokens, connections), seen through to their end: a reset
        # while one is live would leave dialq polling a call the sandbox forgot, its permit
        # held until its maximum duration (a whole account at half capacity for a minute).
        warm = [
            enqueue_call(
                {"phone_number": "+14155550123", "max_duration_s": 60, "account": account},
                settings=settings,
            ).id
            for account in accounts
        ]
        _wait_completed(Database(settings.database_url_resolved), warm, timeout_s=120)
        control.reset()
        skipped_before = sum(_skipped(log) for log in logs)
        sent_at: dict[str, float] = {}
        first = time.time()
        for n in range(args.calls):
            now = time.time()
            request = {"phone_number": "+14155550123", "account": request_account(n, accounts)}
            sent_at[enqueue_call(request, settings=settings).id] = now
        calls = wait_all_ended(control, set(sent_at), args.timeout)
        result = summarise(calls, sent_at, first, args, control)
        skipped = sum(_skipped(log) for log in logs) - skipped_before
        result["skipped_per_start"] = round(skipped / max(1, len(calls)), 3)
        account_of = {call_id: request_account(n, accounts) for n, call_id in enumerate(sent_at)}
        result["account_makespan_spread"] = _account_spread(calls, first, account_of)
        return result


def _wait_completed(db: Any, call_ids: list[str], timeout_s: float) -> None:
    from dialq.store import calls_repo

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db.sessions() as session:
            calls = [calls_repo.get_call(session, call_id) for call_id in call_ids]
        if all(call is not None and call.status == "completed" for call in calls):
            db.dispose()
            return
        time.sleep(0.5)
    raise TimeoutError("warm-up calls did not complete")


def _worker_layout(args: Any, queues: str, n: int) -> list[tuple[str, list[str], int]]:
    """What one worker is: `dialq worker`'s pools (a Celery worker per kind of work, as in
    production), or with `--single` one worker on every queue with `--concurrency` threads."""
    common = ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    if args.single:
        return [
            ("all", ["-A", "dialq.worker", "worker", "-Q", queues, "-P", "threads",
                     "-c", str(args.concurrency), "-n", f"w{n}@%h", *common], 0),
        ]  # fmt: skip
    return [
        (pool.name, ["-A", "dialq.worker", "worker", "-Q", ",".join(pool.queues),
                     "-c", str(pool.concurrency), "-n", f"{pool.name}{n}@%h", *common],
         pool.nice)
        for pool in POOLS
    ]  # fmt: skip


def _skipped(log: Path) -> int:
    """Dial deliveries that did nothing, from the worker's `succeeded ... 'skipped'` lines."""
    return sum(
        1
        for line in log.read_text(errors="replace").splitlines()
        if "dialq.dial[" in line and "succeeded" in line and "'skipped'" in line
    )


def request_account(n: int, accounts: list[str]) -> str:
    return accounts[n % len(accounts)]


def _account_spread(calls: list[dict[str, Any]], first: float, account_of: dict[str, str]) -> float:
    """(slowest - fastest) / fastest of the accounts' own makespans (0 with one account)."""
    ends: dict[str, float] = {}
    for call in calls:
        account = account_of[call["call_id"]]
        ends[account] = max(ends.get(account, 0.0), call["ended_at"] - first)
    if len(ends) < 2:
        return 0.0
    return round((max(ends.values()) - min(ends.values())) / min(ends.values()), 3)


def run_baseline(
    redis_url: str, url: str, control: SandboxControl, args: Any, workdir: Path
) -> dict[str, Any]:
    env = {
        "BENCH_BROKER_URL": redis_url,
        "BENCH_SANDBOX_URL": url,
        "BENCH_APP_ID": APP_ID,
        "BENCH_APP_SECRET": APP_SECRET,
    }
    os.environ.update(env)
    from bench.baseline_tasks import app

    def send(call_id: str) -> None:
        app.send_task("bench.start_with_retry", args=[call_id, BODY], queue="bench.saturation")

    log = workdir / "baseline.log"
    with celery_worker("bench.baseline_tasks", "bench.saturation", env, log, args.concurrency):
        send("warm-up")
        time.sleep(args.duration + 2)
        control.reset()
        sent_at: dict[str, float] = {}
        first = time.time()
        for _ in range(args.calls):
            call_id = str(uuid.uuid4())
            sent_at[call_id] = time.time()
            send(call_id)
        calls = wait_all_ended(control, set(sent_at), args.timeout)
        return summarise(calls, sent_at, first, args, control)


def plot(results: dict[str, Any], args: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4))
    for name in [n for n in ("dialq", "baseline") if n in results]:
        edges = sorted(
            [(start, 1) for start, _ in results[name]["timeline"]]
            + [(end, -1) for _, end in results[name]["timeline"]]
        )
        times, live, current = [0.0], [0], 0
        for moment, step in edges:
            times.append(moment)
            live.append(current)
            current += step
            times.append(moment)
            live.append(current)
        axis.plot(
            times, live, label=f"{name} (makespan x{results[name]['makespan_ratio']:.2f} ideal)"
        )
    axis.axhline(args.limit, color="grey", linestyle=":", label=f"limit N={args.limit}")
    axis.set_xlabel("seconds since the first enqueue")
    axis.set_ylabel("live calls")
    axis.set_title(f"M={args.calls} calls of D={args.duration}s, limit N={args.limit}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16, help="threads, with --single")
    parser.add_argument(
        "--single", action="store_true", help="one Celery worker on every queue per worker"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--postgres", action="store_true", help="a fresh schema on 127.0.0.1")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--watch-page", type=int, default=8, help="DIALQ_WATCH_PAGE (1: a message per look)"
    )
    parser.add_argument(
        "--watch-interval",
        type=float,
        default=0.25,
        help="DIALQ_WATCH_INTERVAL_S: an end is seen on average half of it late, every turn",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.postgres and not args.database_url:
            admin = os.environ.get("DIALQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
            args.database_url = stack.enter_context(pg_schema(admin))
        run(args)


def run(args: Any) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="dialq-saturation-"))
    redis = PrivateRedis().start()
    sandbox_args = [
        "--max-concurrent", str(args.limit), "--call-seconds", str(args.duration),
        "--app-id", APP_ID, "--app-secret", APP_SECRET,
    ]  # fmt: skip
    sandbox_args[1] = str(args.limit * args.accounts)
    try:
        with sandbox_process(*sandbox_args, log=workdir / "sandbox.log") as (url, control):
            results = {"dialq": run_dialq(redis.url, url, control, args, workdir)}
            if not args.no_baseline:
                control.reset()
                results["baseline"] = run_baseline(redis.url, url, control, args, workdir)
    finally:
        redis.stop()
    ideal = math.ceil(args.calls / (args.limit * args.accounts)) * args.duration
    RESULTS.mkdir(exist_ok=True)
    plot(results, args, RESULTS / "saturation.png")
    keys = ("makespan_ratio", "utilization", "http_429", "wait_p50_s", "wait_p99_s")
    extra = (
        "skipped_per_start",
        "account_makespan_spread",
        "first_start_s",
        "handover_p50_s",
        "handover_p99_s",
    )
    names = [n for n in ("dialq", "baseline") if n in results]
    print(
        f"N={args.limit} x {args.accounts} account(s), M={args.calls}, D={args.duration}s, "
        f"{args.workers} worker(s), {'PostgreSQL' if args.database_url else 'SQLite'}, "
        f"watch page {args.watch_page}, looks every {args.watch_interval} s: "
        f"ideal makespan {ideal:.1f}s"
    )
    print(f"{'':10}" + "".join(f"{k:>16}" for k in keys))
    for name in names:
        print(f"{name:10}" + "".join(f"{results[name][k]:>16}" for k in keys))
    print("dialq: " + ", ".join(f"{k} {results['dialq'][k]}" for k in extra))
    summary: dict[str, Any] = {"ideal_s": ideal}
    for name in names:
        shown = keys + extra if name == "dialq" else keys
        summary[name] = {k: results[name][k] for k in shown}
    (RESULTS / "saturation.json").write_text(
        json.dumps({**summary, "args": vars(args)}, indent=2) + "\n"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
