"""When a schedule fires: pure functions from a rule and a time to the next times (no I/O).

Cron rules are evaluated on the local wall clock of the schedule's zone, so 09:00 stays 09:00
across DST changes. A local time that does not exist (the spring gap) fires once, at the first
valid instant after the gap; a local time that happens twice (the autumn fold) fires once, at
its first instant. Interval rules count elapsed time in UTC and ignore the wall clock.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

Kind = Literal["cron", "every", "at"]

# Interval schedules without a start are aligned to multiples of the interval since this
# instant, so "every 15m" fires at :00/:15/:30/:45 UTC whoever created it and whenever.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A count is walked occurrence by occurrence (cron has no closed form): keep the walk bounded.
MAX_COUNT = 10_000
# Zone transitions fall on whole seconds; binary search finds one within a gap to the second.
_ONE_SECOND = timedelta(seconds=1)
# The smallest step: "strictly after window_start - _TICK" includes window_start itself.
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Rule:
    """A schedule's timing, as data. All datetimes are aware; `window_start` is inclusive,
    `end_at` exclusive. `count` limits the occurrences counted from `window_start`."""

    kind: Kind
    timezone: str
    window_start: datetime
    cron: str | None = None
    every_s: int | None = None
    at: datetime | None = None
    anchor: datetime = EPOCH
    end_at: datetime | None = None
    count: int | None = None


class UnreachableRule(ValueError):
    """Raised when a rule's occurrences cannot be computed: a cron that matches no date, or a
    count whose last occurrence falls past year 9999. `field` names the culprit."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def check_reachable(rule: Rule) -> None:
    """Compute the rule's first occurrence and, with a count, its last (cached for the
    dispatcher); raises UnreachableRule instead of croniter's or datetime's errors."""
    try:
        _raw_next(rule, rule.window_start - _TICK)
    except CroniterBadDateError:
        raise UnreachableRule("cron", "matches no date (e.g. 30 February)") from None
    except (OverflowError, ValueError):
        raise UnreachableRule(rule.kind, "has no occurrence before year 9999") from None
    if rule.count is None:
        return
    try:
        _last_counted(rule)
    except CroniterBadDateError:
        raise UnreachableRule("cron", "matches no date (e.g. 30 February)") from None
    except (OverflowError, ValueError):
        rule_text = "runs past year 9999: give a smaller count or an end"
        raise UnreachableRule("count", rule_text) from None


def next_after(rule: Rule, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after` (UTC), or None when the schedule is over."""
    after = max(after, rule.window_start - _TICK)
    candidate = _raw_next(rule, after)
    stop = _stop(rule)
    if candidate is None or (stop is not None and candidate >= stop):
        return None
    return candidate


def occurrences(rule: Rule, after: datetime, limit: int) -> list[datetime]:
    """Up to `limit` occurrences strictly after `after`, in order."""
    found: list[datetime] = []
    current: datetime | None = after
    while len(found) < limit and current is not None:
        current = next_after(rule, current)
        if current is not None:
            found.append(current)
    return found


def _stop(rule: Rule) -> datetime | None:
    """The exclusive end: the end date, or just past the count-th occurrence if sooner."""
    if rule.count is None:
        return rule.end_at
    last = _last_counted(rule)
    stop = last + _TICK if last is not None else rule.window_start
    return stop if rule.end_at is None else min(stop, rule.end_at)


@functools.lru_cache(maxsize=4096)
def _last_counted(rule: Rule) -> datetime | None:
    # Cached: the dispatcher asks for the same rule's bound at every occurrence.
    assert rule.count is not None
    current = rule.window_start - _TICK
    last = None
    for _ in range(min(rule.count, MAX_COUNT)):
        nxt = _raw_next(rule, current)
        if nxt is None or (rule.end_at is not None and nxt >= rule.end_at):
            break
        last = current = nxt
    return last


def _raw_next(rule: Rule, after: datetime) -> datetime | None:
    if rule.kind == "at":
        assert rule.at is not None
        return rule.at if rule.at > after else None
    if rule.kind == "every":
        assert rule.every_s is not None
        return _next_interval(rule.anchor, rule.every_s, after)
    assert rule.cron is not None
    return next_cron(rule.cron, ZoneInfo(rule.timezone), after)


def _next_interval(anchor: datetime, every_s: int, after: datetime) -> datetime:
    if after < anchor:
        return anchor
    step = timedelta(seconds=every_s)
    # timedelta floor division is exact (integer microseconds): no float rounding at multiples.
    return anchor + ((after - anchor) // step + 1) * step


def next_cron(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first instant after `after` at which the cron expression matches the local clock."""
    for wall in _wall_times(expression, zone, after):
        instant = to_instant(wall, zone)
        if instant > after:
            return instant
    raise AssertionError("unreachable: cron iteration is infinite")


def _wall_times(expression: str, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    # croniter iterates naive datetimes on the plain calendar, which is the local wall clock
    # we want; the zone is applied afterwards so gaps and folds are handled in one place.
    # When `after` sits in the second pass of a fold, the next wall times map to instants
    # before it (their first pass): the caller discards those, which is "fires once".
    iterator = croniter(expression, after.astimezone(zone).replace(tzinfo=None))
    while True:
        yield iterator.get_next(datetime)


def to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a naive local time names: its first instant in a fold, the gap's end in a gap."""
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    return _gap_end(wall, zone)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first valid instant after the gap that swallowed `wall` (the transition itself)."""
    # fold=1 reads the wall time with the offset after the transition, fold=0 with the one
    # before; the transition lies between the two readings.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if low > high:
        low, high = high, low
    after_offset = wall.replace(tzinfo=zone, fold=1).utcoffset()
    while high - low > _ONE_SECOND:
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def local_iso(instant: datetime, timezone: str) -> str:
    """`instant` on the schedule's wall clock, with its offset, to the second."""
    return instant.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds")


def utc_iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
