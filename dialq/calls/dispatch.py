"""Getting calls to workers: publish their messages, hand permits on, sweep what was lost.

Every function takes the `CallContext`; the publisher in it logs broker failures, and the
sweeper republishes rows whose message is missing (design.md invariant 6).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from dialq import routing
from dialq.calls.context import CallContext
from dialq.calls.policy import message_due_at, permit_score
from dialq.capacity import RESERVE_S, Verdict
from dialq.store import calls_repo as repo

log = logging.getLogger("dialq.calls")
# A first look's window, as a share of the watch interval: no more than the half interval a
# page's message takes looks ahead (dialq.calls.watch), so it takes every look of its window.
FIRST_LOOK_WINDOW = 0.25


def publish_dial(ctx: CallContext, call_id: str, due_at: datetime) -> None:
    delay_s = max(0.0, (due_at - ctx.now()).total_seconds())
    ctx.publisher.publish(routing.DIAL, call_id, delay_s)


def dispatch(ctx: CallContext, call_id: str, not_before: datetime | None) -> None:
    """Mark, then publish a dial message now or with a short countdown; farther out, wait."""
    due_at = message_due_at(not_before, ctx.now())
    if due_at is None:
        return
    with ctx.db.transaction() as session:
        repo.mark_dispatched(session, call_id, due_at)
    publish_dial(ctx, call_id, due_at)


def sweep(ctx: CallContext, *, grace_s: float = 60.0, horizon_s: float = 10.0) -> int:
    """Publish dialable calls that are due and whose message is missing or stale."""
    now = ctx.now()
    with ctx.db.sessions() as session:
        due = repo.due_for_dispatch(
            session,
            now=now - timedelta(seconds=grace_s),
            horizon=now + timedelta(seconds=horizon_s),
        )
    for call_id, not_before in due:
        dispatch(ctx, call_id, not_before)
    return len(due)


def wake(ctx: CallContext, handed: list[str]) -> None:
    """Send each call handed a permit its dial message (the permit is held for it)."""
    for call_id in handed:
        ctx.publisher.publish(routing.DIAL, call_id)


def release_permit(ctx: CallContext, account: str, call_id: str) -> None:
    """Give a call's permit (or its place in line) back; the freed permit goes to one waiter."""
    try:
        wake(ctx, ctx.capacity.release(account, call_id))
    except Exception:
        # The lease runs out by itself and the watchdog hands permits on: log, don't fail.
        log.warning("could not release the permit of call %s", call_id, exc_info=True)


def line_up(ctx: CallContext, call_id: str, account: str, score: int) -> Verdict:
    """A new call joins its account's line: GRANTED when a permit is held for it at once
    (send its dial message), else it waits (the row must say so, and why).

    Without this, every call of a large burst would be delivered once only to learn it must
    wait, behind the wake-ups of the calls that could start.
    """
    admission = ctx.capacity.acquire(account, call_id, score=score, lease_s=RESERVE_S)
    wake(ctx, admission.handed)
    return admission.verdict


def pause_line(ctx: CallContext, account: str) -> None:
    """The account's API circuit opened: its line is parked, handed no permit, until it closes."""
    if ctx.circuit is not None:
        ctx.capacity.pause(account, ctx.circuit.hold_s)


class InLine(Protocol):
    """What places a call in its account's line (a whole row, or the fields a claim read)."""

    @property
    def id(self) -> str: ...
    @property
    def account(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...


def rejoin_line(ctx: CallContext, call: InLine) -> None:
    """A call back in its account's line; if the circuit closed meanwhile, a permit may be
    held for it at once: then its dial message goes out now."""
    score = permit_score(call.priority, call.created_at)
    if line_up(ctx, call.id, call.account, score) is Verdict.GRANTED:
        ctx.publisher.publish(routing.DIAL, call.id)


def first_look(ctx: CallContext, call_id: str, due_at: datetime) -> None:
    """A connected call's first look, due at `due_at`: the call joins the window that look falls
    in, and the first call of every page of the window publishes a message due at its own first
    look, whose page takes the looks of the others (dialq.lookwindows). They connected, and
    their rows were committed, most of an interval before it runs (a window is a quarter of
    one); a straggler is overdue at the page's next look, which takes overdue calls first.
    A call alone in its window looks exactly as before; when Redis cannot count a call in, it
    gets a message of its own."""
    interval_s = ctx.settings.watch_interval_s
    width_s = interval_s * FIRST_LOOK_WINDOW
    joined = 1
    if ctx.looks is not None and ctx.settings.watch_page > 1:  # pages of one: a message each
        try:
            joined = ctx.looks.join(due_at.timestamp(), width_s, ttl_s=2 * interval_s + width_s)
        except Exception:
            log.warning("call %s: could not join a first look's window", call_id, exc_info=True)
    if (joined - 1) % ctx.settings.watch_page == 0:
        countdown_s = max(0.0, (due_at - ctx.now()).total_seconds())
        ctx.publisher.publish(routing.WATCH_CALL, call_id, countdown_s)


def call_ended(ctx: CallContext, call_id: str) -> None:
    """A live call ended (seen ended, stopped, canceled): collect transcript and insights."""
    ctx.publisher.publish(routing.HARVEST_INSIGHTS, call_id)
