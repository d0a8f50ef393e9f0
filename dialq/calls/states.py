"""The call state machine: every state, every named set of states, every allowed move.

Each use case names the states it moves a call from; `store.calls_repo.transition` refuses a
move that is not in `ALLOWED`, so a new code path cannot invent one unnoticed.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class CallStatus(enum.StrEnum):
    QUEUED = "queued"
    WAITING = "waiting"  # no capacity yet; redialed when a slot frees
    DIALING = "dialing"  # claimed by a worker; the start request is (about to be) in flight
    CONNECTED = "connected"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    UNKNOWN = "unknown"  # the start request's outcome could not be known

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


S = CallStatus

# Over for good: nothing moves such a call again, but a person (an operator's redial).
TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.CANCELED})
# A worker may claim it and send the start request.
DIALABLE = frozenset({S.QUEUED, S.WAITING})
# The call is live at the API; the watcher looks at it until it ends.
LIVE = frozenset({S.CONNECTED, S.STOPPING})
# A start outcome may land here: the real answer of a slow worker beats the watchdog's guess.
RESOLVABLE = frozenset({S.DIALING, S.UNKNOWN})
# Canceled at once: no start request is in flight.
NOT_STARTED = frozenset({S.QUEUED, S.WAITING, S.UNKNOWN})
# Canceled by flag: the worker holding the call stops it.
IN_FLIGHT = frozenset({S.DIALING, S.CONNECTED})
# The call may be live at the API, so it keeps its permit.
MAY_BE_LIVE = frozenset({S.DIALING, S.CONNECTED, S.STOPPING, S.UNKNOWN})

_MOVES: dict[CallStatus, frozenset[CallStatus]] = {
    # claimed; no permit; past its deadline; canceled before dialing
    S.QUEUED: frozenset({S.DIALING, S.WAITING, S.FAILED, S.CANCELED}),
    S.WAITING: frozenset({S.DIALING, S.FAILED, S.CANCELED}),
    # started; retry after a failure (queued) or a 429 (waiting); refused; outcome unknown;
    # canceled while its start request was out (not started, or not known to have started)
    S.DIALING: frozenset({S.CONNECTED, S.QUEUED, S.WAITING, S.FAILED, S.UNKNOWN, S.CANCELED}),
    # a late real answer; the redial policy; canceled by a person
    S.UNKNOWN: frozenset({S.CONNECTED, S.FAILED, S.QUEUED, S.CANCELED}),
    # ended on its own, or our stop is claimed
    S.CONNECTED: frozenset({S.COMPLETED, S.STOPPING}),
    S.STOPPING: frozenset({S.COMPLETED, S.CANCELED}),
}
ALLOWED: frozenset[tuple[CallStatus, CallStatus]] = frozenset(
    (source, target) for source, targets in _MOVES.items() for target in targets
)
# Moves only a person may make, inside `operator_decision()`: no worker, sweeper or policy can
# take a final call out of its final state by mistake.
_OPERATOR_MOVES: dict[CallStatus, frozenset[CallStatus]] = {
    # an operator's redial (dialq.calls.redial)
    S.FAILED: frozenset({S.QUEUED}),
}
OPERATOR_ALLOWED: frozenset[tuple[CallStatus, CallStatus]] = ALLOWED | frozenset(
    (source, target) for source, targets in _OPERATOR_MOVES.items() for target in targets
)
_operator: ContextVar[bool] = ContextVar("dialq_operator_decision", default=False)


@contextmanager
def operator_decision() -> Iterator[None]:
    """Within it, `check_transition` also allows the operator's moves."""
    token = _operator.set(True)
    try:
        yield
    finally:
        _operator.reset(token)


class IllegalTransition(ValueError):
    """Raised when code asks to move a call along an edge the state machine does not have."""


def check_transition(from_: Collection[CallStatus], to: CallStatus) -> None:
    """Raise IllegalTransition when any of the moves `from_` -> `to` is not allowed."""
    allowed = OPERATOR_ALLOWED if _operator.get() else ALLOWED
    illegal = sorted(f"{src.value} -> {to.value}" for src in from_ if (src, to) not in allowed)
    if illegal:
        raise IllegalTransition("not an allowed move: " + ", ".join(illegal))
