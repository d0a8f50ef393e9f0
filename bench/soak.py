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
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    MemorySampler,
    celery_process,
    child_pids,
    median,
    percentile,
    pg_schema,
    rss_mb,
    sandbox_process,
    slope,
    tree_rss_mb,
)
from dialq import names
from dialq.api import producer_runtime
from dialq.redis_server import PrivateRedis
from dialq.sandbox import SandboxControl
from dialq.sandbox.audit import FINAL, AuditReport, audit, permit_holders, read_calls

APP_ID, APP_SECRET = "soak-app", "soak-secret"
NUMBER = "+14155550123"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
START = {"path": "/v1/endpoint:connect", "operation": "start"}
CONVERSATIONS = {"path": "/v1/conversations/*"}
# Modest: about one request in ten misbehaves. 429 is rare because dialq reads it as "the
# account is full" and pauses the whole account (design.md section 3), as it should.
FAULT_RATES = {"500": 0.03, "503": 0.02, "429": 0.005, "drop": 0.01, "slow": 0.02, "hang": 0.01}
SETTLED = frozenset(str(status) for status in FINAL)  # unknown too: a person decides
# The sandbox keeps its request log in memory by design: its growth is reported, not judged.
NOT_JUDGED = frozenset({"sandbox"})


@dataclass(frozen=True)
class Row:
    status: str
    created: float
    settled: float | None
    start_delay: float | None = None  # created_at to the first start request in the sandbox


# -- the stack -------------------------------------------------------------------------------


def stack_env(redis_url: str, database_url: str, sandbox_url: str, args: Any) -> dict[str, str]:
    """Short timeouts and waits, to match calls of a few seconds."""
    return {
        "DIALQ_BROKER_URL": redis_url,
        "DIALQ_DATABASE_URL": database_url,
        "DIALQ_DATA_DIR": str(args.workdir / "data"),
        "DIALQ_SYMBL_BASE_URL": sandbox_url,
        "DIALQ_SYMBL_APP_ID": APP_ID,
        "DIALQ_SYMBL_APP_SECRET": APP_SECRET,
        "DIALQ_MAX_CONCURRENT_CALLS": str(args.max_concurrent),
        "DIALQ_WATCH_INTERVAL_S": "1",
        "DIALQ_HTTP_CONNECT_TIMEOUT_S": "2",
        "DIALQ_HTTP_READ_TIMEOUT_S": str(args.hang_seconds - 2),  # a hang is a read timeout
        "DIALQ_CAPACITY_RETRY_S": "1",
        "DIALQ_BACKOFF_BASE_S": "0.5",
        "DIALQ_BACKOFF_MAX_S": "5",
        # An unknown call keeps its permit for its lease: keep that short, like the calls.
        "DIALQ_PERMIT_LEASE_MARGIN_S": "10",
        "DIALQ_INSIGHTS_BACKOFF_BASE_S": "1",
        "DIALQ_INSIGHTS_BACKOFF_MAX_S": "5",
    }


def start_processes(stack: ExitStack, env: dict[str, str], args: Any) -> dict[str, int]:
    """Worker processes and beat; returns their pids by name."""
    pids: dict[str, int] = {}
    queues = ",".join(names.ALL_QUEUES)
    for index in range(args.workers):
        worker = [
            "-A", "dialq.worker", "worker", "-Q", queues, "-P", "threads",
            "-c", str(args.concurrency), "-n", f"soak{index}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        log = args.workdir / f"worker-{index}.log"
        pids[f"worker-{index}"] = stack.enter_context(
            celery_process(worker, env, log, b" ready.")
        ).pid
    beat = [
        "-A", "dialq.worker", "beat", "-s", str(args.workdir / "beat-schedule"),
        "--loglevel", "INFO", "--pidfile", "",
    ]  # fmt: skip
    log = args.workdir / "beat.log"
    pids["beat"] = stack.enter_context(celery_process(beat, env, log, b"Sending due task")).pid
    return pids


def arm_faults(control: SandboxControl, args: Any) -> None:
    """Random faults on start requests; the same rates, seeded, on the Conversation API."""
    control.random_faults(
        args.seed, FAULT_RATES, match=START, hang_seconds=args.hang_seconds, slow_seconds=1.0
    )
    control.script(conversation_rules(args))


def conversation_rules(args: Any) -> list[dict[str, Any]]:
    """Random faults need one match: the Conversation API gets scripted rules, drawn here."""
    rng = random.Random(args.seed + 1)
    horizon = int(60 * args.rate * (args.duration + args.drain))  # generous: about 60 per call
    picked: dict[str, list[int]] = {kind: [] for kind in FAULT_RATES}
    for nth in range(1, horizon + 1):
        draw = rng.random()
        for kind, rate in FAULT_RATES.items():
            if draw < rate:
                picked[kind].append(nth)
                break
            draw -= rate
    return [
        {"match": CONVERSATIONS, "nth": nths, "action": fault_action(kind, args.hang_seconds)}
        for kind, nths in picked.items()
        if nths
    ]


def fault_action(kind: str, hang_seconds: float) -> dict[str, Any]:
    if kind.isdigit():
        return {"type": "status", "status": int(kind)}
    if kind in ("slow", "hang"):
        return {"type": kind, "seconds": 1.0 if kind == "slow" else hang_seconds}
    return {"type": kind}


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


def memory_figures(
    sampler: MemorySampler, marks: dict[str, dict[str, float]], span: tuple[float, float]
) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    during = [(t, taken) for t, taken in sampler.samples if span[0] <= t <= span[1]]
    late = [(t, taken) for t, taken in during if t >= (span[0] + span[1]) / 2]
    for name in sampler.probes:
        start, end = marks["start"][name], marks["end"][name]
        figures[name] = {
            "start_mb": round(start, 1),
            "end_mb": round(end, 1),
            "after_drain_mb": round(marks["drained"][name], 1),
            "growth_mb": round(end - start, 1),
            "growth_pct": round(100 * (end - start) / start, 1) if start else float("nan"),
            "slope_mb_per_min": round(trend(during, name), 3),
            # A leak keeps its slope; caches filling after the warm-up flatten out.
            "slope_last_half_mb_per_min": round(trend(late, name), 3),
        }
    return figures


def write_samples(sampler: MemorySampler, path: Path) -> None:
    """Every sample, for a plot of the trend: time, then one column of MB per process."""
    columns = list(sampler.probes)
    lines = [",".join(["time", *columns])]
    for t, taken in sorted(sampler.samples, key=lambda sample: sample[0]):
        lines.append(",".join([f"{t:.1f}", *(f"{taken[n]:.1f}" for n in columns)]))
    path.write_text("\n".join(lines) + "\n")


def trend(samples: list[tuple[float, dict[str, float]]], name: str) -> float:
    """MB per minute, least squares over the samples."""
    return slope([t / 60 for t, _ in samples], [taken[name] for _, taken in samples])


# -- reading the outcome ---------------------------------------------------------------------


def load_rows(db: Any, ids: list[str]) -> dict[str, Row]:
    """Each call's status, when it was created and when it reached its settled state."""
    from sqlalchemy import select

    from dialq.store import Call, Event

    rows: dict[str, Row] = {}
    with db.sessions() as session:
        calls = session.execute(select(Call.id, Call.status, Call.created_at))
        events = session.execute(select(Event.call_id, Event.to_status, Event.at))
        settled_at: dict[str, float] = {}
        for call_id, to_status, at in events:
            if to_status in SETTLED:
                settled_at[call_id] = max(settled_at.get(call_id, 0.0), at.timestamp())
        for call_id, status, created in calls:
            settled = settled_at.get(call_id) if status in SETTLED else None
            rows[call_id] = Row(status, created.timestamp(), settled)
    return {call_id: rows[call_id] for call_id in ids if call_id in rows}


def drain(db: Any, ids: list[str], timeout_s: float) -> float:
    """Wait until every call has settled (or the timeout); returns the seconds it took."""
    begin = time.monotonic()
    while time.monotonic() - begin < timeout_s:
        rows = load_rows(db, ids)
        if len(rows) == len(ids) and all(row.status in SETTLED for row in rows.values()):
            break
        time.sleep(1.0)
    return time.monotonic() - begin


def first_starts(log: list[dict[str, Any]]) -> dict[str, float]:
    """call id -> when its first start request reached the sandbox, whatever it answered."""
    seen: dict[str, float] = {}
    for entry in log:
        if entry.get("operation") == "start" and entry.get("call_id"):
            seen.setdefault(entry["call_id"], entry["time"])
    return seen


def count_outcomes(report: AuditReport, sandbox_calls: list[dict[str, Any]]) -> dict[str, int]:
    """The audit's counts (dialq.sandbox.audit defines them), with unknown calls split by
    whether the sandbox did place them: a start dropped before it was processed was not."""
    placed = {c["call_id"] for c in sandbox_calls if c.get("call_id")}
    return {
        "lost": len(report.lost),
        "missing": len(report.missing),
        "stuck": len(report.stuck),
        "doubled": len(report.doubled),
        "orphans": len(report.orphans),
        "leaked_permits": len(report.leaked_permits),
        "unknown": len(report.unknown),
        "unknown_placed": sum(1 for i in report.unknown if i in placed),
        "live_at_end": sum(1 for c in sandbox_calls if c.get("live")),
    }


def settled_rate(rows: list[Row], window: tuple[float, float], lag: float, *statuses: str) -> float:
    """Calls reaching one of `statuses` per second in `window` shifted by `lag`."""
    begin, end = window[0] + lag, window[1] + lag
    count = sum(
        1
        for row in rows
        if row.status in statuses and row.settled is not None and begin <= row.settled < end
    )
    return count / (window[1] - window[0])


def throughput(rows: list[Row], span: tuple[float, float], offered: float) -> dict[str, Any]:
    lag = median([row.settled - row.created for row in rows if row.settled is not None])
    minute = min(60.0, (span[1] - span[0]) / 2)
    windows = {
        "whole": span,
        "first_minute": (span[0], span[0] + minute),
        "last_minute": (span[1] - minute, span[1]),
    }
    figures: dict[str, Any] = {
        "offered_per_s": round(offered, 3),
        "lag_s": round(lag, 2),
        "minute_s": round(minute, 1),  # shorter than 60 s only for runs under two minutes
    }
    for name, window in windows.items():
        settled = settled_rate(rows, window, lag, *SETTLED)
        completed = settled_rate(rows, window, lag, "completed")
        figures[name] = {
            "settled_per_s": round(settled, 3),
            "completed_per_s": round(completed, 3),
            "ratio": round(settled / offered, 3),
            **latency([r for r in rows if window[0] <= r.created < window[1]]),
        }
    return figures


def latency(rows: list[Row]) -> dict[str, float]:
    delays = [1000 * row.start_delay for row in rows if row.start_delay is not None]
    return {
        "latency_p50_ms": round(median(delays), 1),
        "latency_p99_ms": round(percentile(delays, 0.99), 1),
    }


def with_starts(rows: dict[str, Row], starts: dict[str, float]) -> list[Row]:
    return [
        replace(row, start_delay=starts[i] - row.created) if i in starts else row
        for i, row in rows.items()
    ]


def faults_injected(log: list[dict[str, Any]]) -> dict[str, int]:
    """How many requests each fault answered, by where (start, conversations) and what."""
    counts: Counter[str] = Counter()
    for entry in log:
        if entry.get("fault"):
            where = "start" if entry.get("operation") == "start" else "conversations"
            what = str(entry["status"]) if entry["fault"] == "status" else entry["fault"]
            counts[f"{where}:{what}"] += 1
    return dict(sorted(counts.items()))


# -- the run ---------------------------------------------------------------------------------


def sandbox_pid() -> int:
    """The sandbox is a child of this process (bench.harness.sandbox_process started it)."""
    for pid in child_pids(os.getpid()):
        try:
            if b"dialq.sandbox" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise RuntimeError("sandbox process not found")


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


def memory_warnings(memory: dict[str, dict[str, float]], limit_pct: float) -> list[str]:
    return [
        f"WARNING: {name} memory grew {m['growth_mb']} MB ({m['growth_pct']}%) after warm-up, "
        f"over the {limit_pct}% threshold"
        for name, m in memory.items()
        if name not in NOT_JUDGED and m["growth_pct"] > limit_pct
    ]


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
