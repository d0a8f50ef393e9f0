"""An API outage opens the account's circuit: calls wait for the API instead of spending their
failure budget, one probe at a time goes out, and when the API is back every call is placed."""

from __future__ import annotations

import time
from datetime import datetime

import dialq
from dialq.api import producer_runtime
from tests.stack import Stack

START = {"path": "/v1/endpoint:connect", "operation": "start"}
CALLS = 8


def test_a_long_outage_fails_no_call_and_every_call_is_placed_when_the_api_returns(
    stack: Stack,
) -> None:
    # given a failure budget of 2, a circuit that opens after 3 outage failures in a row, and
    # an API answering every start 503 for longer than that budget could ever last
    stack.env.update(
        {
            "DIALQ_FAILURE_RETRY_BUDGET": "2",
            "DIALQ_API_CIRCUIT_THRESHOLD": "3",
            "DIALQ_API_CIRCUIT_COOLDOWN_S": "0.5",
            "DIALQ_API_CIRCUIT_MAX_COOLDOWN_S": "2",
        }
    )
    stack.sandbox.control.script(
        [{"match": START, "times": 100_000, "action": {"type": "status", "status": 503}}]
    )
    stack.start_worker()
    # when calls are placed during the outage, and the API comes back after 12 s
    ids = [
        dialq.enqueue_call(
            {"phone_number": f"+1415555{index:04d}", "max_duration_s": 10},
            settings=stack.settings,
        ).id
        for index in range(CALLS)
    ]
    time.sleep(12.0)
    during = [stack.call(call_id) for call_id in ids]
    refused = len(stack.sandbox.control.requests())
    stack.sandbox.control.clear_faults()
    back = time.monotonic()
    # then during the outage no call failed: they wait, saying why
    assert [c["status"] for c in during if c["status"] in ("failed", "unknown")] == []
    assert any(c["reason"] == "API unavailable" for c in during), [c["reason"] for c in during]
    # and the API saw probes, not every call retrying on its own budget (8 calls x 3 tries
    # = 24 starts in the first seconds, then nothing but failures)
    starts_during = [
        r for r in stack.sandbox.control.requests()[:refused] if r.get("operation") == "start"
    ]
    assert len(starts_during) <= CALLS + 12, len(starts_during)
    # and when the API is back, every call connects (none failed) soon after
    for call_id in ids:
        stack.wait_for(call_id, {"connected", "completed"}, timeout_s=30)
    drained_s = time.monotonic() - back
    assert drained_s < 10.0, drained_s
    calls = [stack.call(call_id) for call_id in ids]
    assert all(c["failures"] <= 2 for c in calls)
    assert producer_runtime(stack.settings).circuit.state(
        "default", datetime.now().timestamp()
    ) == ("closed")
