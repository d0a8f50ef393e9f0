"""Soak: calls at a steady rate for minutes, with random faults, through the whole stack.

A private Redis, SQLite (or PostgreSQL in a private schema), the sandbox in its own process
(calls last --call-seconds, at most --max-concurrent live), --workers worker processes and beat.
After a warm-up without faults, this process enqueues --rate calls per second for --duration
seconds while the sandbox answers a few start and Conversation API requests with 5xx, 429, a
dropped connection, a slow or a hanging reply; then the faults stop and the system drains.

Prints
- throughput: calls settled (completed, failed or unknown) per second against the offered rate
  (the baseline: 1.0 keeps up), over the whole run and its first and last minute, counted in
  windows shifted by the median enqueue-to-settled time;
- start latency p50/p99: a call row's created_at to its first start request in the sandbox log;
- memory (VmRSS from /proc) of each process after warm-up and at the end of the load, growth in
  MB and %, and the least-squares slope per minute; WARNING above --max-growth;
- loss and duplicates, the sandbox's log against the database: lost, doubled, stuck, orphans.
The last line printed is a JSON object of all figures.

    .venv/bin/python bench/soak.py [--rate 5] [--duration 180] [--no-faults] [--database postgres]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import MemorySampler, pg_schema, rss_mb, sandbox_process, tree_rss_mb
from bench.soak_figures import (
    count_outcomes,
    drain,
    faults_injected,
    first_starts,
    latency,
    load_rows,
    memory_figures,
    memory_warnings,
    throughput,
    with_starts,
    write_samples,
)
from bench.soak_stack import APP_ID, APP_SECRET, arm_faults, sandbox_pid, stack_env, start_processes
from dialq.api import producer_runtime
from dialq.ops.local_redis import PrivateRedis
from dialq.sandbox import SandboxControl
from dialq.testing.audit import audit, permit_holders, read_calls

NUMBER = "+14155550123"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


# -- load and memory -------------------------------------------------------------------------


def produce(settings: Any, rate: float, seconds: float) -> list[str]:
    """Enqueue calls on a fixed schedule (no catching up in bursts when one enqueue is slow)."""
    from dialq.api import enqueue_call

    request = {"phone_number": NUMBER, "max_duration_s": 30}
    ids: list[str] = []
    begin = time.monotonic()
    for index in range(int(rate * seconds)):
        delay = begin + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ids.append(enqueue_call(request, settings=settings).id)
    return ids


# -- the run ---------------------------------------------------------------------------------


def probes(pids: dict[str, int]) -> dict[str, Callable[[], float]]:
    """A process with its children (a worker's pool), but this process without them."""
    found: dict[str, Callable[[], float]] = {n: partial(tree_rss_mb, p) for n, p in pids.items()}
    return {**found, "producer": partial(rss_mb, os.getpid())}


def soak(
    settings: Any, db: Any, control: SandboxControl, pids: dict[str, int], args: Any
) -> dict[str, Any]:
    sampler = MemorySampler(probes(pids), args.sample_every)
    warm = produce(settings, args.rate, args.warmup)  # imports, tokens, pools: not measured
    time.sleep(2.0)
    if args.faults:
        arm_faults(control, args)
    marks = {"start": sampler.sample()}
    sampler.start()
    begin = time.time()
    ids = produce(settings, args.rate, args.duration)
    span = (begin, time.time())
    marks["end"] = sampler.sample()
    control.clear_faults()  # the system now recovers: every call must settle
    drain_s = drain(db, ids, args.drain)
    marks["drained"] = sampler.sample()
    sampler.done.set()
    write_samples(sampler, args.workdir / "memory.csv")
    log, sandbox_calls, rows = control.requests(), control.calls(), load_rows(db, ids)
    measured = with_starts(rows, first_starts(log))
    holders = permit_holders(producer_runtime(settings).capacity)
    report = audit(
        read_calls(db), log, sandbox_calls, [*warm, *ids],
        now=datetime.now(UTC), recovery_s=args.recovery, permit_holders=holders,
    )  # fmt: skip
    return {
        "calls": len(ids),
        **throughput(measured, span, len(ids) / (span[1] - span[0])),
        **latency(measured),
        "statuses": dict(Counter(row.status for row in rows.values()).most_common()),
        "faults": faults_injected(log),
        "drain_s": round(drain_s, 1),
        "outcomes": count_outcomes(report, sandbox_calls),
        "memory": memory_figures(sampler, marks, span),
    }


def run(args: Any) -> dict[str, Any]:
    with ExitStack() as stack:
        redis = PrivateRedis().start()
        stack.callback(redis.stop)
        database_url = ""  # a SQLite file in DIALQ_DATA_DIR
        if args.database == "postgres":
            database_url = stack.enter_context(pg_schema(args.pg_url))
        sandbox_args = [
            "--max-concurrent", str(args.max_concurrent), "--call-seconds", args.call_seconds,
            "--seed", str(args.seed), "--app-id", APP_ID, "--app-secret", APP_SECRET,
        ]  # fmt: skip
        url, control = stack.enter_context(
            sandbox_process(*sandbox_args, log=args.workdir / "sandbox.log")
        )
        env = stack_env(redis.url, database_url, url, args)
        os.environ.update(env)  # this process is the producer, with the same settings
        from dialq.api import close_runtimes
        from dialq.config import Settings
        from dialq.store import Database

        settings = Settings()
        db = Database(settings.database_url_resolved)
        db.upgrade()
        stack.callback(close_runtimes)
        pids = start_processes(stack, env, args)
        assert redis.process is not None
        pids.update(sandbox=sandbox_pid(), redis=redis.process.pid)
        return soak(settings, db, control, pids, args)


# -- the report ------------------------------------------------------------------------------


def print_report(figures: dict[str, Any], args: Any) -> None:
    faults = "off" if not args.faults else f"on, hang {args.hang_seconds}s"
    print(
        f"soak: {figures['calls']} calls at {args.rate}/s for {args.duration}s, "
        f"{args.workers} workers x {args.concurrency} threads, {args.database}, faults {faults}"
    )
    print(f"{'':14}{'settled/s':>11}{'completed/s':>13}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for name in ("whole", "first_minute", "last_minute"):
        w = figures[name]
        print(
            f"{name:14}{w['settled_per_s']:>11}{w['completed_per_s']:>13}{w['ratio']:>8}"
            f"{w['latency_p50_ms']:>9}{w['latency_p99_ms']:>9}"
        )
    print(
        f"offered {figures['offered_per_s']}/s; windows shifted by the median enqueue-to-settled "
        f"{figures['lag_s']}s; first/last 'minute' = {figures['minute_s']}s"
    )
    print(f"statuses {figures['statuses']}; drained in {figures['drain_s']}s")
    print(f"faults injected {figures['faults']}")
    print(f"outcomes {figures['outcomes']}")
    print(
        f"{'memory MB':14}{'start':>9}{'end':>9}{'drained':>9}{'growth':>9}{'%':>8}"
        f"{'MB/min':>9}{'2nd half':>10}"
    )
    for name, m in figures["memory"].items():
        print(
            f"{name:14}{m['start_mb']:>9}{m['end_mb']:>9}{m['after_drain_mb']:>9}"
            f"{m['growth_mb']:>9}{m['growth_pct']:>8}{m['slope_mb_per_min']:>9}"
            f"{m['slope_last_half_mb_per_min']:>10}"
        )
    for warning in figures["memory_warnings"]:
        print(warning)


def without_nan(value: Any) -> Any:
    """NaN (no samples: nothing settled, say) as null, so the last line is strict JSON."""
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nan(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def parse_args() -> Any:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--rate", type=lambda s: float(s.removesuffix("/s")), default=5.0, help="calls/s")
    add("--duration", type=float, default=180.0, help="seconds of load after the warm-up")
    add("--warmup", type=float, default=30.0, help="seconds of unmeasured load first")
    add("--drain", type=float, default=120.0, help="longest wait for every call to settle")
    add("--recovery", type=float, default=30.0, help="a call unmoved this long is stuck")
    add("--no-faults", dest="faults", action="store_false")
    add("--database", choices=("sqlite", "postgres"), default="sqlite")
    add("--pg-url", default=os.environ.get("DIALQ_TEST_PG_URL", PG_ADMIN_URL))
    add("--workers", type=int, default=2)
    add("--concurrency", type=int, default=8)
    add("--call-seconds", default="2-5")
    add("--max-concurrent", type=int, default=50)
    add("--hang-seconds", type=float, default=5.0)
    add("--seed", type=int, default=1)
    add("--sample-every", type=float, default=5.0, help="seconds between memory samples")
    add("--max-growth", type=float, default=20.0, help="memory growth (%%) that warns")
    add("--strict", action="store_true", help="exit 1 on a memory warning too")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    args.workdir = Path(tempfile.mkdtemp(prefix="dialq-soak-"))
    figures = run(args)
    figures["memory_warnings"] = memory_warnings(figures["memory"], args.max_growth)
    print_report(figures, args)
    print(f"logs and memory.csv (every sample) in {args.workdir}")
    broken = any(figures["outcomes"][k] for k in ("lost", "doubled", "orphans", "leaked_permits"))
    summary = {**figures, "args": {**vars(args), "workdir": str(args.workdir)}}
    print(json.dumps(without_nan(summary), allow_nan=False))
    return 1 if broken or (args.strict and figures["memory_warnings"]) else 0


if __name__ == "__main__":
    sys.exit(main())
