"""The one exponential backoff: start requests, harvests and webhooks all wait with it."""

from __future__ import annotations

import random
from typing import Literal

# full: anywhere in [0, ceiling], so callers that failed together spread out the most (a start
#       retried early costs nothing: the API only says no again).
# equal: half the ceiling for sure, half at random, so waits surely grow (a receiver that is
#       down is not hammered, a harvest is not retried before it can be ready).
Jitter = Literal["full", "equal"]


def backoff_s(
    attempt: int,
    rng: random.Random,
    *,
    base_s: float,
    max_s: float,
    jitter: Jitter = "full",
) -> float:
    """Delay before retry number `attempt` (1-based): ``base_s * 2**(attempt-1)``, capped at
    `max_s`, then jittered. Randomness comes in as `rng`, so tests fix it."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # The exponent is bounded so a huge attempt number cannot overflow the float.
    ceiling = max(0.0, min(max_s, base_s * 2.0 ** min(attempt - 1, 64)))
    if jitter == "full":
        return rng.uniform(0.0, ceiling)
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
