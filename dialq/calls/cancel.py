"""Cancel a call in whatever state it is: never dialed, stopped if live, left alone if finished."""

from __future__ import annotations

from dialq import routing
from dialq.calls import dispatch
from dialq.calls.context import CallContext
from dialq.calls.states import IN_FLIGHT, NOT_STARTED, CallStatus
from dialq.calls.watch import CancelResult
from dialq.store import calls_repo as repo


def cancel_call(ctx: CallContext, call_id: str) -> CancelResult:
    """Cancel `call_id` and say what that meant for it."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        call = repo.get_call(session, call_id)
        if call is None:
            return CancelResult(call_id, "missing", False, "no such call")
        status = CallStatus(call.status)
        if status in NOT_STARTED:
            unknown = status is CallStatus.UNKNOWN
            reason = (
                "canceled; the start request's outcome is unknown: check Symbl"
                if unknown
                else "canceled before dialing"
            )
            moved = repo.transition(
                session,
                call_id,
                from_={status},
                to=CallStatus.CANCELED,
                now=now,
                detail=reason,
                values={"reason": reason, "ended_at": now},
            )
            if moved:
                if status is CallStatus.UNKNOWN:
                    # It may be live at the API: out of line, but its permit stays until its
                    # lease runs out.
                    ctx.capacity.forget(call.account, call_id)
                else:
                    dispatch.release_permit(ctx, call.account, call_id)
                said = (
                    f"{reason} (it may be live there; dialq will not dial it again, and its "
                    "permit stays taken until its lease ends)"
                    if unknown
                    else f"{reason}; it will never be dialed"
                )
                return CancelResult(call_id, "canceled", True, said)
        elif status in IN_FLIGHT:
            # The worker that holds the call stops it: at once if live, or as soon as its start
            # request answers. Flagged in the row, so a cancel racing a dial is never lost.
            flagged = repo.flag_cancel(session, call_id, IN_FLIGHT, now)
            if flagged:
                repo.append_event(session, call_id, status.value, now, "cancel requested")
                live = status is CallStatus.CONNECTED
        else:
            return CancelResult(
                call_id, status.value, False, f"already {status.value}; left as it is"
            )
    if status in IN_FLIGHT and flagged:
        if live:
            ctx.publisher.publish(routing.WATCH_CALL, call_id)
        return CancelResult(
            call_id, status.value, True, "cancel requested; the call will be stopped"
        )
    return cancel_call(ctx, call_id)  # the state moved under us: decide again
