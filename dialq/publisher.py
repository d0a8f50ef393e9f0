"""How tasks are published: the Publisher interface, the countdown cap, and a publisher that
logs broker failures instead of raising. It imports no Celery (worker.CeleryPublisher does)."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("dialq.publisher")

# Invariant 4: every broker countdown stays well under the visibility timeout. Anything
# farther out is a `not_before` in the database that the sweeper publishes when it comes due.
MAX_COUNTDOWN_S = 60.0


class Publisher(Protocol):
    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        """Send the task named `task` (see dialq.routing) with `call_id` as its only argument."""


class SafePublisher:
    """Publishes through `inner`; a broker failure is logged, never raised.

    Every message dialq publishes has its truth in the database (a due time, a pending event,
    a harvest state), and a sweeper republishes what was lost: a broker outage delays work, it
    must not fail the transaction or the task that was already committed.
    """

    def __init__(self, inner: Publisher) -> None:
        self.inner: Publisher = inner.inner if isinstance(inner, SafePublisher) else inner

    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        try:
            self.inner.publish(task, call_id, min(max(0.0, countdown_s), MAX_COUNTDOWN_S))
        except Exception:
            log.warning(
                "could not publish %s for call %s; a sweeper will", task, call_id, exc_info=True
            )
