"""The rest of the HTTP API over real HTTP, with a real worker dialing through the sandbox:
following a call's events as Server-Sent Events, its transcript and insights, and an
operator's redial."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from tests.integration.test_http_api import Api, assert_problem, running_api
from tests.integration.test_http_api_dial import wait_for_status
from tests.stack import Stack

NUMBER = "+14155550123"
START = {"path": "/v1/endpoint:connect", "operation": "start"}
FAST_INSIGHTS = {"DIALQ_INSIGHTS_BACKOFF_BASE_S": "0.3", "DIALQ_INSIGHTS_BACKOFF_MAX_S": "1"}


def follow(
    api: Api, key: str, call_id: str, last_event_id: str | None = None
) -> list[dict[str, Any]]:
    """Every SSE event of the call's stream until the server ends it: id, event and data."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with requests.get(
        f"{api.url}/v1/calls/{call_id}/events", headers=headers, stream=True, timeout=30
    ) as answer:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines(decode_unicode=True):
            if not line:
                if "data" in current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                current[name] = json.loads(value) if name == "data" else value.strip()
    return events


def place(api: Api, key: str) -> str:
    placed = api.call("POST", "/v1/calls", key, json={"phone_number": NUMBER})
    assert placed.status_code == 201, placed.text
    return str(placed.json()["id"])


def wait_for_insights(api: Api, key: str, call_id: str) -> requests.Response:
    deadline = time.monotonic() + 30
    while True:
        answer = api.call("GET", f"/v1/calls/{call_id}/insights", key)
        if answer.status_code != 409:
            return answer
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.3)


def test_a_follower_sees_every_state_live_until_completed_then_resumes_after_an_event_id(
    stack: Stack,
) -> None:
    # given calls the far end hangs up after 1.5 s, a worker, `dialq api` and a key
    stack.sandbox.control.configure(call_seconds=1.5)
    stack.env.update(FAST_INSIGHTS)
    stack.start_worker()
    with running_api(stack.env, stack.workdir) as api:
        key = api.make_key("default")
        # when a call is placed and its events followed from the start
        call_id = place(api, key)
        events = follow(api, key, call_id)
        # then the stream held every state in order, each with its seq as id, and ended at
        # the final state
        states = [e["event"] for e in events]
        assert states[0] == "queued"
        assert "dialing" in states
        assert "connected" in states
        assert states[-1] == "completed"
        assert [int(e["id"]) for e in events] == [e["data"]["seq"] for e in events]
        assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))
        assert all(e["data"]["call_id"] == call_id and e["data"]["to"] == e["event"]
                   for e in events)  # fmt: skip
        # when a follower reconnects with the id of the connected event
        connected = next(e for e in events if e["event"] == "connected")
        resumed = follow(api, key, call_id, last_event_id=connected["id"])
        # then it gets only what came after it, and the stream ends again at completed
        assert resumed == [e for e in events if int(e["id"]) > int(connected["id"])]
        assert resumed[-1]["event"] == "completed"


def test_a_completed_call_gives_its_transcript_in_each_format_and_its_insights(
    stack: Stack,
) -> None:
    # given a call that connected and completed, and its insights harvested
    stack.sandbox.control.configure(call_seconds=1.0)
    stack.env.update(FAST_INSIGHTS)
    stack.start_worker()
    with running_api(stack.env, stack.workdir) as api:
        key = api.make_key("default")
        call_id = place(api, key)
        wait_for_status(api, key, call_id, {"completed"})
        # when its insights are read
        insights = wait_for_insights(api, key, call_id)
        # then they are ready, with every part the sandbox produced
        assert insights.status_code == 200, insights.text
        body = insights.json()
        assert body["status"] == "ready", body
        assert body["messages"]
        assert body["topics"] is not None
        # when its transcript is read as text, SRT and JSON
        text = api.call("GET", f"/v1/calls/{call_id}/transcript", key)
        srt = api.call("GET", f"/v1/calls/{call_id}/transcript?format=srt", key)
        as_json = api.call("GET", f"/v1/calls/{call_id}/transcript?format=json", key)
        # then each is the rendered transcript with its own media type
        assert text.status_code == 200, text.text
        assert text.headers["content-type"].startswith("text/plain")
        first = body["messages"][0]
        assert " ".join(first["text"].split()) in text.text
        assert srt.headers["content-type"].startswith("application/x-subrip")
        assert srt.text.startswith("1\n00:00:")
        assert as_json.json() == body["messages"]
        # and a format it does not know is a 422 naming the parameter
        bad = api.call("GET", f"/v1/calls/{call_id}/transcript?format=pdf", key)
        assert assert_problem(bad, 422)["errors"][0]["field"] == "query.format"


def test_a_failed_call_has_no_transcript_for_good_and_an_operators_redial_dials_it_again(
    stack: Stack,
) -> None:
    # given a call the API refuses once with a 400, so it fails, never connected
    rule = {"type": "status", "status": 400, "body": {"message": "number not reachable"}}
    stack.sandbox.control.script([{"match": START, "times": 1, "action": rule}])
    stack.start_worker()
    with running_api(stack.env, stack.workdir) as api:
        key = api.make_key("default")
        reader = api.make_key("default", scopes=("calls:read",))
        call_id = place(api, key)
        wait_for_status(api, key, call_id, {"failed"})
        # when its transcript and insights are asked for
        transcript = api.call("GET", f"/v1/calls/{call_id}/transcript", key)
        insights = api.call("GET", f"/v1/calls/{call_id}/insights", key)
        # then both are 404s that say it never connected
        assert "never connected" in assert_problem(transcript, 404)["detail"]
        assert "never connected" in assert_problem(insights, 404)["detail"]
        # when a read-only key asks for a redial, then it is refused
        assert_problem(api.call("POST", f"/v1/calls/{call_id}/redial", reader), 403)
        # when a writer asks for a redial
        redialed = api.call("POST", f"/v1/calls/{call_id}/redial", key)
        # then it is queued again, the worker dials it once more, and it connects
        assert redialed.status_code == 200, redialed.text
        assert (redialed.json()["status"], redialed.json()["changed"]) == ("queued", True)
        live = wait_for_status(api, key, call_id, {"connected"})
        assert len(stack.starts_for(call_id)) == 2
        # and its events record the decision and which key made it
        decision = next(e for e in live["events"] if "redial requested" in (e["detail"] or ""))
        assert (decision["from"], decision["to"]) == ("failed", "queued")
        assert "API key" in decision["detail"]
        # when a redial is asked of the connected call, then it is a 409 and nothing changes
        again = api.call("POST", f"/v1/calls/{call_id}/redial", key)
        assert "only a failed or unknown call" in assert_problem(again, 409)["detail"]
        assert len(stack.starts_for(call_id)) == 2


def test_events_of_a_call_of_another_account_or_with_a_bad_last_event_id_are_problems(
    stack: Stack,
) -> None:
    # given a call of the default account, and a key for another account
    stack.start_worker()
    with running_api(stack.env, stack.workdir) as api:
        key = api.make_key("default")
        stranger = api.make_key("other")
        call_id = place(api, key)
        headers = {"Last-Event-ID": "not-a-number"}
        # when the stranger follows it, or its owner resumes with an id it never sent
        hidden = api.call("GET", f"/v1/calls/{call_id}/events", stranger)
        bad = api.call("GET", f"/v1/calls/{call_id}/events", key, headers=headers)
        # then the stranger gets a 404 and the owner a 422 naming the header
        assert_problem(hidden, 404)
        assert assert_problem(bad, 422)["errors"][0]["field"] == "header.Last-Event-ID"


def test_a_key_past_its_rate_limit_gets_429_with_retry_after_and_another_key_does_not(
    stack: Stack,
) -> None:
    # given `dialq api` limiting each key to 3 requests a minute, and two keys
    env = {**stack.env, "DIALQ_API_RATE_LIMIT": "3/minute"}
    with running_api(env, stack.workdir) as api:
        busy, other = api.make_key("default"), api.make_key("default")
        # when one key makes 4 requests
        answers = [api.call("GET", "/v1/calls", busy) for _ in range(4)]
        # then the first 3 are answered and the 4th is a 429 saying when to come back
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        assert_problem(answers[3], 429)
        assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
        # and the other key is not slowed by it
        assert api.call("GET", "/v1/calls", other).status_code == 200
