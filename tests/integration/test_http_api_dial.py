"""A call placed over HTTP is dialed by a real worker through the sandbox, followed with GET and
stopped with the cancel endpoint: the whole path a non-Python client takes."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.test_http_api import Api, running_api
from tests.stack import Stack


def wait_for_status(api: Api, key: str, call_id: str, wanted: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        detail: dict[str, Any] = api.call("GET", f"/v1/calls/{call_id}", key).json()
        if detail["status"] in wanted:
            return detail
        assert time.monotonic() < deadline, detail
        time.sleep(0.2)


def test_a_call_posted_over_http_is_dialed_followed_and_stopped_by_its_cancel(
    stack: Stack,
) -> None:
    # given the stack, a worker and `dialq api`, and a key for the default account
    stack.start_worker()
    with running_api(stack.env, stack.workdir) as api:
        key = api.make_key("default")
        # when a call is posted
        placed = api.call(
            "POST", "/v1/calls", key, json={"phone_number": "+14155550123"},
            headers={"Idempotency-Key": "http-dial-1"},
        )  # fmt: skip
        assert placed.status_code == 201, placed.text
        call_id = placed.json()["id"]
        # then the worker dials it: GET shows it connected, with its start attempt and events
        live = wait_for_status(api, key, call_id, {"connected"})
        assert live["conversation_id"]
        assert "start" in [a["operation"] for a in live["attempts"]]
        assert [e["to"] for e in live["events"]][-1] == "connected"
        assert len(stack.starts_for(call_id)) == 1
        # when it is canceled over HTTP
        canceled = api.call("POST", f"/v1/calls/{call_id}/cancel", key)
        # then the cancel is accepted and the worker stops the live call
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["changed"] is True
        ended = wait_for_status(api, key, call_id, {"canceled", "completed"})
        assert "stop" in [a["operation"] for a in ended["attempts"]]
        # and a replay of the post still names the one call, dialed once
        again = api.call(
            "POST", "/v1/calls", key, json={"phone_number": "+14155550123"},
            headers={"Idempotency-Key": "http-dial-1"},
        )  # fmt: skip
        assert (again.status_code, again.json()["id"]) == (200, call_id)
        assert len(stack.starts_for(call_id)) == 1
