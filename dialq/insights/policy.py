"""When to try a harvest again and when to give up: pure functions (style.md habit 4)."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import datetime

from dialq.backoff import backoff_s
from dialq.insights.states import InsightsStatus
from dialq.publisher import MAX_COUNTDOWN_S
from dialq.symbl.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    SymblError,
)


class Kind(enum.Enum):
    NOT_READY = "not ready"  # Symbl is still processing: wait
    TRANSIENT = "transient"  # 5xx, connection trouble, a 404 that may yet resolve: wait
    PERMANENT = "permanent"  # waiting cannot help (credentials, permissions, a bad request)


@dataclass(frozen=True)
class Problem:
    """Why a harvest did not end with insights ready."""

    reason: str
    kind: Kind


@dataclass(frozen=True)
class Decision:
    status: InsightsStatus
    reason: str | None
    retry_in_s: float | None = None


SUMMARY_NOT_READY = Problem("summary still not ready", Kind.NOT_READY)
TRANSCRIPT_EMPTY = Problem("transcript still empty", Kind.NOT_READY)


def problem_for(error: SymblError) -> Problem:
    """The reason to record for an error that stopped a harvest, and whether to wait it out."""
    if isinstance(error, NotFoundError):
        return Problem("conversation not found (404)", Kind.TRANSIENT)
    if isinstance(error, AuthenticationError):
        return Problem("401 unauthorized", Kind.PERMANENT)
    if isinstance(error, PermissionDeniedError):
        return Problem("403 forbidden", Kind.PERMANENT)
    if isinstance(error, BadRequestError):
        return Problem(f"400 bad request: {error.message}", Kind.PERMANENT)
    if isinstance(error, APIStatusError):
        return Problem(f"HTTP {error.status}: {error.message}", Kind.TRANSIENT)
    return Problem(str(error)[:200] or type(error).__name__, Kind.TRANSIENT)


def retry_delay_s(attempt: int, rng: random.Random, base_s: float, max_s: float) -> float:
    """Delay after harvest attempt `attempt`: equal jitter (a harvest retried at once would only
    meet the same "not ready" again), at most 60 s (a broker countdown, invariant 4)."""
    return backoff_s(attempt, rng, base_s=base_s, max_s=min(max_s, MAX_COUNTDOWN_S), jitter="equal")


def decide(
    problem: Problem | None,
    *,
    now: datetime,
    deadline: datetime,
    deadline_s: float,
    attempt: int,
    rng: random.Random,
    base_s: float,
    max_s: float,
) -> Decision:
    """Ready, wait and try again (never past the deadline), or give up with the reason."""
    if problem is None:
        return Decision(InsightsStatus.READY, None)
    if problem.kind is Kind.PERMANENT:
        return Decision(InsightsStatus.UNAVAILABLE, problem.reason)
    remaining_s = (deadline - now).total_seconds()
    if remaining_s <= 0:
        return Decision(InsightsStatus.UNAVAILABLE, given_up_reason(problem, deadline_s))
    # The last try lands on the deadline itself rather than just after it.
    delay_s = min(retry_delay_s(attempt, rng, base_s, max_s), remaining_s)
    return Decision(InsightsStatus.PENDING, problem.reason, delay_s)


def given_up_reason(problem: Problem, deadline_s: float) -> str:
    """``summary still not ready after 900 s``; an error's reason as it is."""
    if problem.kind is Kind.NOT_READY:
        return f"{problem.reason} after {deadline_s:g} s"
    return problem.reason
