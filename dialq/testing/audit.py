"""Check dialq's two promises against the sandbox: no call lost, no call placed twice.

The audit compares three views after a run: the calls dialq was asked for (the ids producers got
back), the rows in dialq's database, and what the sandbox saw (its request log and its calls).

Definitions (the chaos suite and the soak benchmark report these counts):

- **final**: `completed`, `failed`, `canceled`, or `unknown`. `unknown` is final for loss
  purposes (a person or the redial policy decides, invariant 3) but is counted apart.
- **missing**: an enqueued id with no row.
- **stuck**: a row that is not final and that nothing has moved for the whole recovery window:
  for `queued`, `waiting` and `dialing`, `updated_at` is older than `now - recovery_s`;
  for the live states (`connected`, `stopping`) the watcher's next look (`watch_due_at`) is
  that old, or missing. A `queued` or `waiting` row whose `not_before` is still ahead is
  legitimately waiting (a planned call or a backoff), never stuck.
- **lost**: missing or stuck.
- **doubled**: a call id with more than one start request that the sandbox processed with 201
  (whether or not the reply reached dialq).
- **orphan**: a call live in the sandbox whose call id has no row in a state that may be live
  (`dialing`, `connected`, `stopping`, `unknown`).
- **leaked permit**: a permit still held (its lease not run out) by a call that is not in a
  state that may be live, or that has no row. Expired leases free themselves and are not leaks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dialq.calls.states import DIALABLE, LIVE, MAY_BE_LIVE, CallStatus
from dialq.capacity import Capacity
from dialq.sandbox.control import SandboxControl
from dialq.store import Database, calls_repo

FINAL = frozenset(
    {CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.CANCELED, CallStatus.UNKNOWN}
)
MAYBE_LIVE = MAY_BE_LIVE
WAITS = DIALABLE


@dataclass(frozen=True)
class CallSnapshot:
    """What the audit needs of one call row."""

    id: str
    status: str
    account: str
    updated_at: datetime
    not_before: datetime | None = None
    watch_due_at: datetime | None = None


@dataclass(frozen=True)
class AuditReport:
    """The outcome of one audit; every collection is sorted call ids."""

    calls: int
    statuses: Mapping[str, int]
    missing: tuple[str, ...]
    stuck: tuple[str, ...]
    unknown: tuple[str, ...]
    doubled: tuple[str, ...]
    orphans: tuple[str, ...]
    leaked_permits: tuple[str, ...] = ()

    @property
    def lost(self) -> tuple[str, ...]:
        return tuple(sorted({*self.missing, *self.stuck}))

    @property
    def clean(self) -> bool:
        """True when no call is lost or doubled, no sandbox call is orphaned, no permit leaked."""
        return not (self.lost or self.doubled or self.orphans or self.leaked_permits)


def read_calls(database: str | Database) -> dict[str, CallSnapshot]:
    """Every call row, as snapshots keyed by id (a URL opens, and then closes, its own engine)."""
    db = Database(database) if isinstance(database, str) else database
    try:
        with db.sessions() as session:
            rows = calls_repo.snapshot_all(session)
    finally:
        if isinstance(database, str):
            db.dispose()
    return {row[0]: CallSnapshot(*row) for row in rows}


def audit(
    calls: Mapping[str, CallSnapshot],
    requests: Iterable[Mapping[str, Any]],
    sandbox_calls: Iterable[Mapping[str, Any]],
    enqueued: Collection[str],
    *,
    now: datetime,
    recovery_s: float,
    permit_holders: Mapping[str, Iterable[str]] | None = None,
) -> AuditReport:
    """Compare the rows, the sandbox's request log and calls, and the enqueued ids.

    `requests` and `sandbox_calls` are what `SandboxControl.requests()` and `.calls()` return;
    `permit_holders` maps an account to the call ids holding a permit (see `permit_holders`).
    """
    cutoff = now - timedelta(seconds=recovery_s)
    statuses = Counter(call.status for call in calls.values())
    return AuditReport(
        calls=len(set(enqueued) | set(calls)),
        statuses=dict(sorted(statuses.items())),
        missing=tuple(sorted(set(enqueued) - set(calls))),
        stuck=tuple(sorted(c.id for c in calls.values() if _stuck(c, now, cutoff))),
        unknown=tuple(sorted(c.id for c in calls.values() if c.status == CallStatus.UNKNOWN)),
        doubled=doubled_starts(requests),
        orphans=orphans(sandbox_calls, calls),
        leaked_permits=leaked_permits(permit_holders or {}, calls),
    )


def audit_run(
    database: str | Database,
    control: SandboxControl,
    enqueued: Collection[str],
    *,
    recovery_s: float,
    capacity: Capacity | None = None,
    now: datetime | None = None,
) -> AuditReport:
    """Read the rows, the sandbox's log and calls, and (given `capacity`) permits; audit."""
    return audit(
        read_calls(database),
        control.requests(),
        control.calls(),
        enqueued,
        now=now or datetime.now(UTC),
        recovery_s=recovery_s,
        permit_holders=permit_holders(capacity) if capacity is not None else None,
    )


def doubled_starts(requests: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Call ids with more than one start request the sandbox answered (or processed) with 201."""
    starts = Counter(
        str(r["call_id"])
        for r in requests
        if r.get("operation") == "start" and r.get("status") == 201 and r.get("call_id")
    )
    return tuple(sorted(call_id for call_id, n in starts.items() if n > 1))


def orphans(
    sandbox_calls: Iterable[Mapping[str, Any]], calls: Mapping[str, CallSnapshot]
) -> tuple[str, ...]:
    """Live sandbox calls (by connectionId) whose call has no row that may be live."""
    found = []
    for live in sandbox_calls:
        if not live.get("live"):
            continue
        row = calls.get(str(live.get("call_id")))
        if row is None or CallStatus(row.status) not in MAYBE_LIVE:
            found.append(str(live["connectionId"]))
    return tuple(sorted(found))


def leaked_permits(
    holders: Mapping[str, Iterable[str]], calls: Mapping[str, CallSnapshot]
) -> tuple[str, ...]:
    """Permit holders (unexpired) whose call has no row or is in no state that may be live."""
    leaked = {
        call_id
        for ids in holders.values()
        for call_id in ids
        if call_id not in calls or CallStatus(calls[call_id].status) not in MAYBE_LIVE
    }
    return tuple(sorted(leaked))


def permit_holders(capacity: Capacity) -> dict[str, list[str]]:
    """The calls holding an unexpired permit, per account (expired leases are dropped first)."""
    return {account: capacity.holders(account) for account in capacity.limits}


def _stuck(call: CallSnapshot, now: datetime, cutoff: datetime) -> bool:
    status = CallStatus(call.status)
    if status in FINAL:
        return False
    if status in WAITS and call.not_before is not None and _utc(call.not_before) > now:
        return False
    if status in LIVE:
        return call.watch_due_at is None or _utc(call.watch_due_at) < cutoff
    return _utc(call.updated_at) < cutoff


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
