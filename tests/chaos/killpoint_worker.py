"""A real Celery worker that kills itself with SIGKILL at one step of a dial (test-only).

    python -m tests.chaos.killpoint_worker STEP NTH -- <celery worker arguments>

On the NTH time the process reaches STEP (counted over all its threads) it sends itself
SIGKILL: no cleanup, no ack, no goodbye, like a machine losing power. Production code is not
touched; the steps are wrapped here, around the methods a dial goes through:

- `before_claim`: a delivery is about to read and claim its call;
- `holding_permit`: the permit was just granted in Redis, the claim not yet committed;
- `after_claim`: the call is claimed (`dialing`, committed), the start request not yet sent;
- `after_post`: the start request was answered, the outcome not yet recorded.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from dialq.calls.claim import Claim
from dialq.capacity import Admission, Capacity, Verdict
from dialq.symbl.client import SymblClient

STEPS = ("before_claim", "holding_permit", "after_claim", "after_post")


class KillPoint:
    """Counts arrivals at the step and kills the process on the nth."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.seen = 0
        self.lock = threading.Lock()

    def reached(self) -> None:
        with self.lock:
            self.seen += 1
            if self.seen >= self.nth:
                os.kill(os.getpid(), signal.SIGKILL)


def arm(step: str, point: KillPoint) -> None:
    """Wrap the method where `step` happens so it calls `point.reached()` there."""
    if step == "before_claim":
        take = Claim.take

        def take_then(self: Claim) -> Any:
            point.reached()
            return take(self)

        Claim.take = take_then  # type: ignore[method-assign]
    elif step == "holding_permit":
        acquire = Capacity.acquire

        def acquire_then(self: Capacity, *args: Any, **kwargs: Any) -> Admission:
            admission = acquire(self, *args, **kwargs)
            if admission.verdict is Verdict.GRANTED:
                point.reached()
            return admission

        Capacity.acquire = acquire_then  # type: ignore[method-assign]
    elif step in ("after_claim", "after_post"):
        start = SymblClient.start
        before = step == "after_claim"

        def start_then(self: SymblClient, *args: Any, **kwargs: Any) -> Any:
            if before:
                point.reached()
            result = start(self, *args, **kwargs)
            if not before:
                point.reached()
            return result

        SymblClient.start = start_then  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown step {step!r}; one of {', '.join(STEPS)}")


def main(argv: list[str]) -> None:
    step, nth, separator, *celery_args = argv
    if separator != "--":
        raise SystemExit(__doc__)
    arm(step, KillPoint(int(nth)))
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *celery_args]
    run: Callable[[], None] = celery_main
    run()


if __name__ == "__main__":
    main(sys.argv[1:])
