"""The watchdog: one idempotent beat tick that repairs what lost messages and dead workers leave.

- calls stuck in `dialing` past the HTTP timeouts plus a margin go to `unknown` (the reconciler);
- `unknown` calls follow the policy: `alert` leaves them for a person, `redial` queues them again
  after a delay;
- live calls whose next look is overdue get one (so a call past its maximum duration is stopped
  even when the task that should have stopped it was lost);
- queued and waiting calls with no live message are published again.
Running it twice at once changes nothing more: every repair is a conditional update.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from dialq import routing
from dialq.capacity import waiting_score
from dialq.store import Call, CallStatus
from dialq.store import calls_repo as repo

if TYPE_CHECKING:
    from dialq.calls.service import CallService

log = logging.getLogger("dialq.watchdog")
BATCH = 500
# Far longer than a worker takes from its permit's grant to its claim's commit.
CLAIM_GRACE_S = 60.0


def run_watchdog(service: CallService) -> dict[str, int]:
    report = {
        "stale_dialing": _stale_dialing(service),
        "unknown_redialed": _redial_unknown(service)
        if service.settings.unknown_policy == "redial"
        else 0,
        "unknown_waiting_for_a_person": _count(service, CallStatus.UNKNOWN),
        "watches_republished": _overdue_watches(service),
        "dials_republished": service.sweep(grace_s=service.settings.dispatch_grace_s),
        **capacity_backstop(service),
    }
    if report["unknown_waiting_for_a_person"] and service.settings.unknown_policy == "alert":
        log.warning(
            "%d call(s) in state unknown need a person: see `dialq calls --status unknown`",
            report["unknown_waiting_for_a_person"],
        )
    return report


def _ids(service: CallService, *conditions: object) -> list[str]:
    with service.db.sessions() as session:
        return list(session.scalars(select(Call.id).where(*conditions).limit(BATCH)))  # type: ignore[arg-type]


def _stale_dialing(service: CallService) -> int:
    now = service.now()
    cutoff = now - timedelta(seconds=service.settings.dialing_stale_s)
    moved = 0
    for call_id in _ids(service, Call.status == CallStatus.DIALING.value, Call.claimed_at < cutoff):
        reason = "worker lost while dialing: the start request's outcome is unknown"
        with service.db.transaction() as session:
            moved += repo.transition(
                session,
                call_id,
                from_={CallStatus.DIALING},
                to=CallStatus.UNKNOWN,
                now=now,
                detail=reason,
                values={"reason": reason},
            )
    return moved


def _redial_unknown(service: CallService) -> int:
    now = service.now()
    cutoff = now - timedelta(seconds=service.settings.unknown_redial_delay_s)
    moved = 0
    for call_id in _ids(service, Call.status == CallStatus.UNKNOWN.value, Call.updated_at < cutoff):
        with service.db.transaction() as session:
            moved += repo.transition(
                session,
                call_id,
                from_={CallStatus.UNKNOWN},
                to=CallStatus.QUEUED,
                now=now,
                detail="redial per the unknown-outcome policy",
                values={"not_before": now, "dispatch_due_at": None},
            )
        service.dispatch(call_id, now)
    return moved


def _count(service: CallService, status: CallStatus) -> int:
    with service.db.sessions() as session:
        return len(repo.list_calls(session, status=status.value, limit=10_000))


def _overdue_watches(service: CallService) -> int:
    now = service.now()
    grace = timedelta(seconds=2 * service.settings.watch_interval_s + 10)
    overdue = _ids(
        service,
        Call.status.in_([CallStatus.CONNECTED.value, CallStatus.STOPPING.value]),
        or_(Call.watch_due_at.is_(None), Call.watch_due_at < now - grace),
        Call.connected_at < now - grace,
    )
    for call_id in overdue:
        service.publish(routing.WATCH_CALL, call_id)
    return len(overdue)


def capacity_backstop(service: CallService) -> dict[str, int]:
    """Per account: rebuild the waiting index from the database, free permits held by calls
    that are over, fail waiters past their deadline, and wake as many as permits allow."""
    woken = freed = expired = 0
    for account in service.settings.accounts:
        expired += _fail_expired_waiters(service, account)
        freed += _free_permits_of_finished_calls(service, account)
        with service.db.sessions() as session:
            rows = session.execute(
                select(Call.id, Call.priority, Call.created_at).where(
                    Call.account == account,
                    Call.status == CallStatus.WAITING.value,
                    Call.not_before.is_(None),
                )
            ).all()
        service.capacity.index_waiting(
            account,
            {
                row.id: waiting_score(row.priority, int(row.created_at.timestamp() * 1000))
                for row in rows
            },
        )
        for call_id in service.capacity.waiting_head(account):
            service.publish(routing.DIAL, call_id)
            woken += 1
    return {"permit_waiters_woken": woken, "permits_freed": freed, "waiters_expired": expired}


def _free_permits_of_finished_calls(service: CallService, account: str) -> int:
    # dialing, connected, stopping and unknown calls may be live at the API: they keep theirs.
    over = [s.value for s in (CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.CANCELED)]
    stale = _held_by(service, service.capacity.holders(account), over)
    # A queued or waiting holder may be a worker between its grant and its claim's commit:
    # only a grant older than any claim can take (a rolled-back claim) is freed.
    settled = service.capacity.settled_holders(account, older_than_s=CLAIM_GRACE_S)
    unclaimed = [CallStatus.QUEUED.value, CallStatus.WAITING.value]
    stale += _held_by(service, settled, unclaimed)
    for call_id in stale:
        service.release_permit(account, call_id)
    return len(stale)


def _held_by(service: CallService, holders: list[str], statuses: list[str]) -> list[str]:
    """Which of these permit holders are in one of these states."""
    if not holders:
        return []
    return _ids(service, Call.id.in_(holders), Call.status.in_(statuses))


def _fail_expired_waiters(service: CallService, account: str) -> int:
    now = service.now()
    expired = _ids(
        service,
        Call.account == account,
        Call.status == CallStatus.WAITING.value,
        Call.deadline_at <= now,
    )
    for call_id in expired:
        reason = "deadline passed while waiting for capacity"
        with service.db.transaction() as session:
            repo.transition(
                session,
                call_id,
                from_={CallStatus.WAITING},
                to=CallStatus.FAILED,
                now=now,
                detail=reason,
                values={"reason": reason, "ended_at": now},
            )
        service.capacity.forget(account, call_id)
    return len(expired)
