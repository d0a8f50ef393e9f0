"""The soak's figures: settled calls, throughput, start latency, memory trend and outcomes."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.harness import MemorySampler, median, percentile, slope
from dialq.testing.audit import FINAL, AuditReport

SETTLED = frozenset(str(status) for status in FINAL)  # unknown too: a person decides
# The sandbox keeps its request log in memory by design: its growth is reported, not judged.
NOT_JUDGED = frozenset({"sandbox"})


@dataclass(frozen=True)
class Row:
    status: str
    created: float
    settled: float | None
    start_delay: float | None = None  # created_at to the first start request in the sandbox


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
    """The audit's counts (dialq.testing.audit defines them), with unknown calls split by
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


def memory_warnings(memory: dict[str, dict[str, float]], limit_pct: float) -> list[str]:
    return [
        f"WARNING: {name} memory grew {m['growth_mb']} MB ({m['growth_pct']}%) after warm-up, "
        f"over the {limit_pct}% threshold"
        for name, m in memory.items()
        if name not in NOT_JUDGED and m["growth_pct"] > limit_pct
    ]
