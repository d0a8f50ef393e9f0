"""Redial a call that failed or whose outcome is unknown: an operator's explicit decision.

Nothing in dialq redials a failed call on its own, nor an unknown one under the default
policy (invariant 3: the first start request may have placed the call). A person who has
checked decides; the call goes back in line with a fresh deadline and retry budget, and its
timeline records who asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from dialq.calls import dispatch
from dialq.calls.context import CallContext
from dialq.calls.states import CallStatus, operator_decision
from dialq.store import calls_repo as repo

# The states an operator may send back to the line: over for dialq, not for the person.
REDIALABLE: Final = frozenset({CallStatus.FAILED, CallStatus.UNKNOWN})


@dataclass(frozen=True)
class RedialResult:
    """What `redial` did, in words for the CLI, the Python API and the HTTP API."""

    call_id: str
    status: str
    changed: bool
    message: str


def redial_call(ctx: CallContext, call_id: str, *, by: str = "an operator") -> RedialResult:
    """Put a failed or unknown call back in line (queued, due now) and publish its dial."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        call = repo.get_call(session, call_id)
        if call is None:
            return RedialResult(call_id, "missing", False, "no such call")
        status = CallStatus(call.status)
        if status not in REDIALABLE:
            why = f"it is {status.value}: only a failed or unknown call can be redialed"
            return RedialResult(call_id, status.value, False, why)
        with operator_decision():
            moved = repo.transition(
                session,
                call_id,
                from_={status},
                to=CallStatus.QUEUED,
                now=now,
                detail=f"redial requested by {by} (was {status.value})",
                values={
                    "reason": None,
                    "ended_at": None,
                    "failures": 0,
                    "not_before": now,
                    "dispatch_due_at": None,
                    "deadline_at": now + timedelta(seconds=ctx.settings.dial_deadline_s),
                },
            )
    if not moved:
        return redial_call(ctx, call_id, by=by)  # the state moved under us: decide again
    dispatch.dispatch(ctx, call_id, now)
    return RedialResult(call_id, CallStatus.QUEUED.value, True, "queued again; it will be dialed")
