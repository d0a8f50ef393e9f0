"""The watchdog: one idempotent beat tick that repairs what lost messages and dead workers leave.

- calls stuck in `dialing` past the HTTP timeouts plus a margin go to `unknown` (the reconciler);
- `unknown` calls follow the policy: `alert` leaves them for a person, `redial` queues them again
  after a delay;
- live calls whose next look is overdue get one (so a call past its maximum duration is stopped
  even when the task that should have stopped it was lost);
- queued and waiting calls with no live message are published again;
- the changes of state since the last tick are folded into the counts the metrics read.
Running it twice at once changes nothing more: every repair is a conditional update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from dialq import routing
from dialq.calls import dispatch
from dialq.calls.context import CallContext
from dialq.calls.policy import CANCELED_UNKNOWN, permit_score
from dialq.calls.states import DIALABLE, CallStatus
from dialq.store import calls_repo as repo
from dialq.store import line_repo as lines
from dialq.store import repair_repo as queries
from dialq.store import state_counts

log = logging.getLogger("dialq.watchdog")
_T = TypeVar("_T")
# Far longer than a worker takes from its permit's grant to its claim's commit.
CLAIM_GRACE_S = 60.0
# Waiting rows the line repair reads per account and tick (twice: the head, and a page).
LINE_PAGE = 100
# Folds of state changes per tick: 100,000 changes, far more than a 5 s tick makes.
FOLDS_PER_TICK = 20
# Where each account's walk over its line stands, per process (any start point is correct).
_line_cursor: dict[str, str] = {}
# Lines walked per tick while the Redis index is intact, and the account walked last.
LINES_PER_TICK = 10
_next_line = ""


def run_watchdog(ctx: CallContext) -> dict[str, int]:
    report = {
        "stale_dialing": _stale_dialing(ctx),
        "unknown_redialed": _redial_unknown(ctx) if ctx.settings.unknown_policy == "redial" else 0,
        "unknown_waiting_for_a_person": _count(ctx, CallStatus.UNKNOWN),
        "watches_republished": _overdue_watches(ctx),
        "dials_republished": dispatch.sweep(ctx, grace_s=ctx.settings.dispatch_grace_s),
        **capacity_backstop(ctx),
        "state_changes_folded": _fold_state_counts(ctx),
    }
    if report["unknown_waiting_for_a_person"] and ctx.settings.unknown_policy == "alert":
        log.warning(
            "%d call(s) in state unknown need a person: see `dialq calls --status unknown`",
            report["unknown_waiting_for_a_person"],
        )
    return report


def _read(ctx: CallContext, query: Callable[..., _T], *args: Any) -> _T:
    with ctx.db.sessions() as session:
        return query(session, *args)


def _stale_dialing(ctx: CallContext) -> int:
    now = ctx.now()
    cutoff = now - timedelta(seconds=ctx.settings.dialing_stale_s)
    moved = 0
    for call_id in _read(ctx, queries.stale_dialing, cutoff):
        reason = "worker lost while dialing: the start request's outcome is unknown"
        with ctx.db.transaction() as session:
            call = repo.get_call(session, call_id)
            # Canceled meanwhile: final, never redialed; the permit stays until its lease ends.
            to = CallStatus.UNKNOWN
            values: dict[str, object] = {"reason": reason}
            if call is not None and call.cancel_requested_at is not None:
                to = CallStatus.CANCELED
                reason = f"{CANCELED_UNKNOWN} (worker lost while dialing)"
                values = {"reason": reason, "ended_at": now}
            moved += repo.transition(
                session, call_id, from_={CallStatus.DIALING}, to=to, now=now, detail=reason,
                values=values,
            )  # fmt: skip
    return moved


def _fold_state_counts(ctx: CallContext) -> int:
    """Keep the metrics' counts by state cheap to read: a bounded number of short folds."""
    folded = 0
    for _ in range(FOLDS_PER_TICK):
        with ctx.db.transaction() as session:
            taken = state_counts.fold(session)
        folded += taken
        if taken < state_counts.FOLD_BATCH:
            break
    return folded


def _redial_unknown(ctx: CallContext) -> int:
    now = ctx.now()
    cutoff = now - timedelta(seconds=ctx.settings.unknown_redial_delay_s)
    moved = 0
    for call_id in _read(ctx, queries.unknown_since, cutoff):
        with ctx.db.transaction() as session:
            moved += repo.transition(
                session,
                call_id,
                from_={CallStatus.UNKNOWN},
                to=CallStatus.QUEUED,
                now=now,
                detail="redial per the unknown-outcome policy",
                values={"not_before": now, "dispatch_due_at": None},
            )
        dispatch.dispatch(ctx, call_id, now)
    return moved


def _count(ctx: CallContext, status: CallStatus) -> int:
    return _read(ctx, queries.count_in, status)


def _overdue_watches(ctx: CallContext) -> int:
    now = ctx.now()
    grace = timedelta(seconds=2 * ctx.settings.watch_interval_s + 10)
    overdue = _read(ctx, queries.overdue_watches, now - grace)
    for call_id in overdue:
        ctx.publisher.publish(routing.WATCH_CALL, call_id)
    return len(overdue)


def capacity_backstop(ctx: CallContext) -> dict[str, int]:
    """Repair only what is inconsistent, in bounded work per tick for the accounts with calls
    in play: fail waiters past their deadline, free permits held by calls that are over (or
    handed to a call whose wake-up was lost), put back in line the waiters the Redis index
    lost, and hand free permits to waiters (after a cooldown, nothing else would).

    The database is asked a fixed number of questions per tick for all accounts together
    (100 accounts once cost 600 statements a tick); each line is walked in turn, a few
    accounts a tick, except after Redis lost its data, when every line is walked at once."""
    waiting = set(_read(ctx, lines.accounts_waiting))
    accounts = sorted((waiting | set(ctx.capacity.busy_accounts())) & set(ctx.capacity.limits))
    expired = _fail_expired_waiters(ctx, [a for a in accounts if a in waiting])
    freed = _free_permits_of_finished_calls(ctx, accounts)
    reindexed = sum(
        _repair_line(ctx, account)
        for account in _lines_to_walk(ctx, [a for a in accounts if a in waiting])
    )
    woken = 0
    handed_by_account = ctx.capacity.hand_off_all(accounts)
    for account in accounts:
        # A parked line (its API circuit open) is left out above and looked at here.
        handed = handed_by_account.get(account)
        if handed is None:
            handed = _hand_off(ctx, account)
        dispatch.wake(ctx, handed)
        woken += len(handed)
    return {
        "permit_waiters_woken": woken,
        "permits_freed": freed,
        "waiters_expired": expired,
        "waiters_reindexed": reindexed,
    }


def _lines_to_walk(ctx: CallContext, accounts: list[str]) -> list[str]:
    """Every line when Redis lost its index; else the next few, in turn across ticks."""
    if not ctx.capacity.index_intact() or len(accounts) <= LINES_PER_TICK:
        return accounts
    global _next_line
    after = [a for a in accounts if a > _next_line] + [a for a in accounts if a <= _next_line]
    chosen = after[:LINES_PER_TICK]
    _next_line = chosen[-1]
    return chosen


def _hand_off(ctx: CallContext, account: str) -> list[str]:
    """Free permits to the line; while the account's API circuit is open, the line is parked
    and gets none, but when no call is due to probe (its message lost) the head of the line
    is sent as the probe. A pause whose circuit is gone (expired) is lifted."""
    circuit = ctx.circuit
    if circuit is None or not ctx.capacity.paused(account):
        return ctx.capacity.hand_off(account)
    now_s = ctx.now().timestamp()
    if circuit.state(account, now_s) == "closed":
        return ctx.capacity.resume(account)
    head = ctx.capacity.head_of_line(account)
    return [head] if head and circuit.claim_due_probe(account, head, now_s) else []


def _repair_line(ctx: CallContext, account: str) -> int:
    """Put back in line the waiting rows the index lost: the head of the line every tick (it
    matters first), and one page of the rest, walked a page per tick."""
    after = _line_cursor.get(account, "")
    head = _read(ctx, lines.head_of_line, account, LINE_PAGE)
    page = _read(ctx, lines.waiters_after, account, after, LINE_PAGE)
    _line_cursor[account] = page[-1][0] if len(page) == LINE_PAGE else ""
    scored = {
        call_id: permit_score(priority, created) for call_id, priority, created in head + page
    }
    return ctx.capacity.index_missing(account, scored)


def _free_permits_of_finished_calls(ctx: CallContext, accounts: list[str]) -> int:
    # dialing, connected, stopping and unknown calls may be live at the API: they keep theirs.
    held = ctx.capacity.holders_of(accounts)
    account_of = {call_id: account for account, ids in held.items() for call_id in ids}
    stale = _read(ctx, queries.over, list(account_of))
    # A queued or waiting holder may be a worker between its grant and its claim's commit:
    # only a grant older than any claim can take (a rolled-back claim) is freed. So is one
    # held for no row: its producer joined the line and died before writing the call.
    settled: list[str] = []
    for account in accounts:
        for call_id in ctx.capacity.settled_holders(account, older_than_s=CLAIM_GRACE_S):
            account_of[call_id] = account
            settled.append(call_id)
    stale += _read(ctx, queries.in_states, settled, DIALABLE)
    stale += _read(ctx, queries.unknown, settled)
    for call_id in stale:
        dispatch.release_permit(ctx, account_of[call_id], call_id)
    return len(stale)


def _fail_expired_waiters(ctx: CallContext, accounts: list[str]) -> int:
    now = ctx.now()
    expired = _read(ctx, queries.expired_waiters, accounts, now)
    for call_id, account in expired:
        reason = "deadline passed while waiting for capacity"
        with ctx.db.transaction() as session:
            repo.transition(
                session,
                call_id,
                from_={CallStatus.WAITING},
                to=CallStatus.FAILED,
                now=now,
                detail=reason,
                values={"reason": reason, "ended_at": now},
            )
        dispatch.release_permit(ctx, account, call_id)
    return len(expired)
