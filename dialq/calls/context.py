"""What every call use case is handed: built once per process, never the facade itself.

Use cases (enqueue, dial, watch, cancel, watchdog) receive a `CallContext` and plain functions
from `dialq.calls.dispatch`; none of them imports `CallService`, so none can reach back into
another use case through it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from dialq.capacity import Capacity
from dialq.circuit import Circuit
from dialq.clock import utcnow
from dialq.config import Settings
from dialq.lookwindows import LookWindows
from dialq.publisher import Publisher
from dialq.store import Database
from dialq.symbl.client import AttemptRecord, SymblClient


class ClientFactory(Protocol):
    def __call__(
        self, account: str, on_attempt: Callable[[AttemptRecord], None]
    ) -> SymblClient: ...


@dataclass(frozen=True)
class CallContext:
    settings: Settings
    db: Database
    capacity: Capacity
    clients: ClientFactory
    # Logs broker failures instead of raising (dialq.publisher.SafePublisher).
    publisher: Publisher
    worker_id: str = "local"
    # None: no circuit (tests of a single use case, tools that never dial).
    circuit: Circuit | None = None
    # Holds an account's calls while the token endpoint refuses its credentials (same mechanism).
    credentials: Circuit | None = None
    # Calls connected together share their first look's message (dialq.lookwindows); None: a
    # message each.
    looks: LookWindows | None = None
    clock: Callable[[], datetime] = utcnow
    rng: random.Random = field(default_factory=random.Random)

    def now(self) -> datetime:
        return self.clock()
