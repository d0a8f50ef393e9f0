"""Live calls over time, as steps: the exact count after each connect and end. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

Span = tuple[datetime, datetime | None]


def live_steps(
    spans: Iterable[Span], since: datetime, now: datetime
) -> tuple[list[float], list[int]]:
    """(times as Unix seconds, live calls from that time on) between `since` and `now`.

    An end and a start at the same instant count the end first: a permit handed straight
    to the next call never shows as one call too many."""
    changes: list[tuple[datetime, int]] = []
    for connected, ended in spans:
        changes.append((connected, +1))
        if ended is not None:
            changes.append((ended, -1))
    changes.sort(key=lambda change: (change[0], change[1]))
    live = sum(delta for at, delta in changes if at <= since)
    times, counts = [since.timestamp()], [live]
    for at, delta in changes:
        if since < at <= now:
            live += delta
            if times[-1] == at.timestamp():
                counts[-1] = live
            else:
                times.append(at.timestamp())
                counts.append(live)
    times.append(now.timestamp())
    counts.append(live)
    return times, counts
