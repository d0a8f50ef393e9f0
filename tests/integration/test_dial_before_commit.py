"""A permit can reach a new call before its producer has committed the call's row (the call
joins its line first): the dial message the releaser sends then finds no row. A real worker
must look again and dial the call once, not drop it."""

from __future__ import annotations

import time

from dialq.api import producer_runtime
from dialq.calls import dispatch, enqueue
from dialq.calls.request import parse_call_request
from dialq.store import Call, Session
from tests.stack import Stack

RETRY_LINE = "retry: Retry in"


def wait_for_log(stack: Stack, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in stack.worker_logs():
        assert time.monotonic() < deadline, stack.worker_logs()[-4000:]
        time.sleep(0.02)


def test_a_dial_that_finds_no_row_looks_again_and_dials_the_call_once_it_is_committed(
    stack: Stack,
) -> None:
    # given a worker, and an account whose one permit a live call holds
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "1"
    stack.start_worker()
    ctx = producer_runtime(stack.settings).service.ctx
    ctx.capacity.acquire("default", "live", score=1, lease_s=600)

    def live_call_ends_before_this_commit(session: Session, call: Call) -> None:
        # the live call ends while the new call's row is uncommitted: its permit goes to the
        # new call, and the dial the release sends runs, finds no row, and is retried
        dispatch.release_permit(ctx, "default", "live")
        wait_for_log(stack, RETRY_LINE)

    # when a call is placed across that moment
    request = parse_call_request({"phone_number": "+14155550123"})
    placed = enqueue.place(ctx, request, also=live_call_ends_before_this_commit)
    # then it was written waiting, and the retried dial, finding its row, places it once
    assert placed.handle.status == "waiting"
    stack.wait_for(placed.handle.id, {"connected", "completed"})
    assert len(stack.starts_for(placed.handle.id)) == 1
    assert stack.worker_logs().count(RETRY_LINE) == 1
