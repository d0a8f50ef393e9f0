"""How dial messages are published and delayed: kept apart so the service imports no Celery."""

from __future__ import annotations

import random
from typing import Protocol

# Invariant 4: every broker countdown stays well under the visibility timeout. Anything
# farther out is a `not_before` in the database that the sweeper publishes when it comes due.
MAX_COUNTDOWN_S = 60.0


class Publisher(Protocol):
    def publish_dial(self, call_id: str, countdown_s: float) -> None:
        """Send the dial message for `call_id`, to run after `countdown_s` seconds."""

    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        """Send the task named `task` (see dialq.routing) with `call_id` as its only argument."""


def capacity_delay_s(retry_after_s: float | None, base_s: float, rng: random.Random) -> float:
    """When to try a start again after a 429.

    A Retry-After header, if the API ever sends one, is honoured; otherwise a short delay
    with ±50% jitter, so calls that met the same full account do not return in lockstep.
    """
    if retry_after_s is not None:
        return min(MAX_COUNTDOWN_S, max(0.0, retry_after_s))
    return min(MAX_COUNTDOWN_S, base_s * rng.uniform(0.5, 1.5))
