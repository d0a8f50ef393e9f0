"""Pure decisions about a call: what a failed start means, when to try again, how long a
permit lasts, when a message is due. Time and randomness come in; nothing is written."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from dialq.backoff import backoff_s
from dialq.capacity import waiting_score
from dialq.publisher import MAX_COUNTDOWN_S
from dialq.symbl.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    CapacityError,
    CredentialsError,
    OutcomeUnknownError,
    SymblError,
    UnexpectedResponseError,
)
from dialq.symbl.retry import is_retryable_failure

StartKind = Literal["capacity", "credentials", "retry", "unknown", "failed"]
# A call canceled while its start request was out, whose answer never came: final for dialq,
# which never dials it again, but it may be live at the API.
CANCELED_UNKNOWN = "canceled while dialing; the start request's outcome is unknown: check Symbl"
# Why a call waits while its account's API circuit is open (parked in the account's line).
API_UNAVAILABLE = "API unavailable"
# A call canceled while its start request was out, which the API refused: never redialed.
CANCELED_REASON = "canceled while dialing; not redialed"


def credentials_refused(account: str) -> str:
    """A waiting call's reason while its account's credentials are refused."""
    return f"account {account}: app id or secret refused by the token endpoint"


@dataclass(frozen=True)
class StartOutcome:
    """What a start request that raised means for its call.

    capacity: a 429, a capacity signal that spends no failure budget (`retry_after_s` if the API
    sent one). retry: it certainly never started a call and may work later (spends budget).
    unknown: a call may have started; never redialed on its own (invariant 3). failed: for good.
    credentials: the token endpoint refused the account's app id or secret; nothing was sent,
    and the account's calls wait for its credentials to work, at no cost to their budgets.
    """

    kind: StartKind
    reason: str
    retry_after_s: float | None = None


def start_outcome(error: SymblError) -> StartOutcome:
    if isinstance(error, CapacityError):
        return StartOutcome("capacity", "no capacity (429)", error.retry_after_s)
    if isinstance(error, CredentialsError):
        why = f"token endpoint refused the app id or secret (HTTP {error.status}: {error.message})"
        return StartOutcome("credentials", why)
    if is_retryable_failure(error):
        return StartOutcome("retry", describe(error))
    if isinstance(error, OutcomeUnknownError | UnexpectedResponseError):
        return StartOutcome("unknown", describe(error))
    if isinstance(error, BadRequestError):
        return StartOutcome("failed", f"rejected: {error.message}")
    if isinstance(error, AuthenticationError):
        return StartOutcome("failed", f"unauthorized: {error.message}")
    if isinstance(error, APIStatusError):
        return StartOutcome("failed", f"http {error.status}: {error.message}")
    # An error this table does not know may have left a call live: reconcile, never redial.
    return StartOutcome("unknown", describe(error))


def describe(error: BaseException) -> str:
    """A short, secret-free description for reasons and events."""
    text = str(error) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def capacity_delay_s(retry_after_s: float | None, base_s: float, rng: random.Random) -> float:
    """When to try a start again after a 429.

    A Retry-After header, if the API ever sends one, is honoured; otherwise a short delay
    with ±50% jitter, so calls that met the same full account do not return in lockstep.
    """
    if retry_after_s is not None:
        return min(MAX_COUNTDOWN_S, max(0.0, retry_after_s))
    return min(MAX_COUNTDOWN_S, base_s * rng.uniform(0.5, 1.5))


def failure_delay_s(failures: int, rng: random.Random, base_s: float, max_s: float) -> float:
    """When to redial after failure number `failures`: full jitter (a start retried early only
    meets the same answer), at most a broker countdown (invariant 4)."""
    return backoff_s(failures, rng, base_s=base_s, max_s=min(max_s, MAX_COUNTDOWN_S))


def message_due_at(not_before: datetime | None, now: datetime) -> datetime | None:
    """When a dial message published now would run; None when too far out for a countdown."""
    if not_before is None or not_before <= now:
        return now
    if (not_before - now).total_seconds() > MAX_COUNTDOWN_S:
        return None  # invariant 4: long waits live in the database, not in a broker countdown
    return not_before


def lease_s(max_duration_s: float, margin_s: float) -> float:
    """A permit expires by itself after the longest the call may live, so a dead worker's
    permit comes back; the watcher renews it while the call is live."""
    return max_duration_s + margin_s


def lease_renewal_due(
    connected_at: datetime, now: datetime, interval_s: float, margin_s: float
) -> bool:
    """Whether a look at a live call renews its permit's lease (to its maximum duration from
    `connected_at`, plus the margin).

    The claim took the lease before the start request, so the first look moves it to the call's
    own times; after that the value would not change, and a renewal at every look was a Redis
    round trip per live call per look. Looks still renew once every half margin: a lease that
    Redis lost or rolled back (a restart that replayed an older state) is repaired well before
    it could run out under the call.
    """
    since_s = (now - connected_at).total_seconds()
    if since_s < 1.5 * interval_s:
        return True  # the first look (or one before it)
    period_s = margin_s / 2
    if period_s <= 0:
        return True
    return math.floor(since_s / period_s) > math.floor((since_s - interval_s) / period_s)


def permit_score(priority: int, created_at: datetime) -> int:
    """Place in the account's waiting line: priority first, then first come, first served."""
    return waiting_score(priority, int(created_at.timestamp() * 1000))
