"""A cancel that lands while a worker holds the call in `dialing` is final, whatever the start
request then answers: no second start, a live call stopped at once, an unknown one closed and
never redialed.

The token request is made slow, so the call sits in `dialing` long enough to be canceled
before its start request is sent; the start then gets the answer each test scripts.
"""

from __future__ import annotations

import time

import dialq
from dialq.api import producer_runtime
from tests.stack import Stack

NUMBER = "+14155550110"
TOKEN = {"path": "/oauth2/token:generate"}
START = {"path": "/v1/endpoint:connect", "operation": "start"}


def _cancel_while_dialing(stack: Stack, start_action: dict[str, object] | None) -> str:
    rules: list[dict[str, object]] = [
        {"match": TOKEN, "times": 1, "action": {"type": "slow", "seconds": 1.5}}
    ]
    if start_action is not None:
        rules.append({"match": START, "times": 1, "action": start_action})
    stack.sandbox.control.script(rules)
    stack.start_worker()
    handle = dialq.enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    stack.wait_for(handle.id, {"dialing"}, timeout_s=10)
    result = dialq.cancel_call(handle.id, settings=stack.settings)
    assert result.changed, result
    return handle.id


def test_a_start_refused_503_after_a_cancel_is_not_redialed(stack: Stack) -> None:
    # given a call canceled while dialing, whose start request is then answered 503
    call_id = _cancel_while_dialing(stack, {"type": "status", "status": 503})
    # then it is canceled, saying what the start got, and no second start is ever sent
    call = stack.wait_for(call_id, {"canceled"}, timeout_s=15)
    assert "canceled while dialing" in call["reason"]
    assert "503" in call["reason"]
    time.sleep(2.0)  # a redial (the bug) would come within the backoff's first step
    assert [s["status"] for s in stack.starts_for(call_id)] == [503]
    assert producer_runtime(stack.settings).capacity.usage("default").permits_in_use == 0


def test_a_start_that_connects_after_a_cancel_is_stopped_at_once(stack: Stack) -> None:
    # given a call canceled while dialing, whose start request then succeeds
    call_id = _cancel_while_dialing(stack, None)
    # then the call is stopped at its first look, not a watch interval later, and canceled
    call = stack.wait_for(call_id, {"canceled"}, timeout_s=15)
    assert len(stack.starts_for(call_id)) == 1
    stops = [r for r in stack.sandbox.control.requests() if r.get("operation") == "stop"]
    assert len(stops) == 1
    assert not stack.sandbox.control.calls(live_only=True)
    assert call["status"] == "canceled"


def test_a_start_whose_outcome_is_unknown_after_a_cancel_is_closed_and_keeps_its_permit(
    stack: Stack,
) -> None:
    # given a call canceled while dialing whose start then hangs past the read timeout (2 s)
    call_id = _cancel_while_dialing(stack, {"type": "hang", "seconds": 5})
    # then the call is canceled (never redialed), saying Symbl may have it, and its permit
    # stays taken: the call may be live there
    call = stack.wait_for(call_id, {"canceled"}, timeout_s=20)
    assert "outcome is unknown" in call["reason"]
    assert len(stack.starts_for(call_id)) == 1
    runtime = producer_runtime(stack.settings)
    assert runtime.capacity.usage("default").permits_in_use == 1
