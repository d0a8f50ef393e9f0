"""The Conversation API (docs/symbl-api.md §6) and the event API (§4) over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from dialq.sandbox import RunningSandbox
from tests.fixtures_sandbox import SDK_START_BODY, SandboxClient

NOT_FOUND = {
    "message": "The conversation and/or it's metadata you asked could not be found, "
    "please check the input provided"
}
INSIGHTS = {
    "topics": "topics",
    "questions": "questions",
    "action-items": "actionItems",
    "follow-ups": "followUps",
}
EVENT = {
    "topic": "speaker",
    "type": "started_speaking",
    "user": {"userId": "ann@example.com", "name": "Ann"},
    "timestamp": "2020-07-10T11:16:21.024Z",
}


def ended_call(client: SandboxClient, name: str | None = None) -> dict[str, Any]:
    body = {**SDK_START_BODY, "data": {"session": {"name": name}}} if name else SDK_START_BODY
    created: dict[str, Any] = client.start(body).json()
    assert client.stop(created["connectionId"]).status_code == 200
    return created


def everything(client: SandboxClient, conversation_id: str) -> dict[str, Any]:
    base = f"/v1/conversations/{conversation_id}"
    paths = [
        "",
        "/messages",
        "/members",
        "/summary",
        "/analytics",
        "/trackers-detected",
        *[f"/{p}" for p in INSIGHTS],
    ]
    return {path: client.get(base + path).json() for path in paths}


def test_an_ended_conversation_has_every_resource_in_the_documented_shape(
    sandbox_client: SandboxClient,
) -> None:
    # given a call that has been stopped (no processing delay)
    created = ended_call(sandbox_client, name="Weekly sync")
    base = f"/v1/conversations/{created['conversationId']}"
    # then the conversation has both times and its members
    conversation = sandbox_client.get(base).json()
    assert conversation["id"] == created["conversationId"]
    assert (conversation["type"], conversation["name"]) == ("meeting", "Weekly sync")
    assert datetime.fromisoformat(conversation["startTime"]) <= datetime.fromisoformat(
        conversation["endTime"]
    )
    assert {"id", "name", "email"} <= set(conversation["members"][0])
    # and the messages, insights, summary, analytics and trackers are there, in shape
    messages = sandbox_client.get(base + "/messages").json()["messages"]
    assert len(messages) >= 10
    assert {
        "id",
        "text",
        "from",
        "startTime",
        "endTime",
        "timeOffset",
        "duration",
        "conversationId",
        "phrases",
    } <= set(messages[0])
    message_ids = {m["id"] for m in messages}
    for path, key in INSIGHTS.items():
        items = sandbox_client.get(f"{base}/{path}").json()[key]
        assert items, path
        assert all(
            set(item["messageIds"]) <= message_ids and item["id"].isdigit() for item in items
        )
    action = sandbox_client.get(base + "/action-items").json()["actionItems"][0]
    assert action["type"] == "action_item"
    assert "name" in action["assignee"]
    summary = sandbox_client.get(base + "/summary").json()["summary"]
    assert all({"id", "text", "messageRefs"} <= set(s) for s in summary)
    analytics = sandbox_client.get(base + "/analytics").json()
    assert {m["type"] for m in analytics["metrics"]} == {
        "total_silence",
        "total_talk_time",
        "total_overlap",
    }
    assert {"pace", "talkTime", "listenTime"} <= set(analytics["members"][0])
    trackers = sandbox_client.get(base + "/trackers-detected").json()
    assert isinstance(trackers, list)
    assert trackers[0]["matches"][0]["type"] == "vocabulary"
    assert sandbox_client.get(base + "/members").json()["members"] == conversation["members"]


def test_verbose_and_sentiment_add_words_and_polarity(sandbox_client: SandboxClient) -> None:
    created = ended_call(sandbox_client)
    path = f"/v1/conversations/{created['conversationId']}/messages?verbose=true&sentiment=true"
    message = sandbox_client.get(path).json()["messages"][0]
    assert message["sentiment"]["suggested"] in {"positive", "negative", "neutral"}
    assert message["words"][0]["word"] == message["text"].split()[0]


def test_the_same_conversation_reads_the_same_every_time(sandbox_client: SandboxClient) -> None:
    created = ended_call(sandbox_client)
    assert everything(sandbox_client, created["conversationId"]) == everything(
        sandbox_client, created["conversationId"]
    )


def test_while_live_insights_are_empty_summary_404_and_end_time_null(
    sandbox_client: SandboxClient,
) -> None:
    created = sandbox_client.start().json()
    base = f"/v1/conversations/{created['conversationId']}"
    assert sandbox_client.get(base).json()["endTime"] is None
    for path, key in INSIGHTS.items():
        assert sandbox_client.get(f"{base}/{path}").json() == {key: []}
    assert sandbox_client.get(base + "/summary").status_code == 404
    assert sandbox_client.get(base + "/trackers-detected").json() == []
    assert sandbox_client.get(base + "/messages").json()["messages"] == []  # nobody has spoken yet


def test_summary_appears_only_after_the_end_plus_the_processing_delay(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    # given insights take half a second to process
    client = make_sandbox_client(make_sandbox(insights_delay_s=0.5))
    created = ended_call(client)
    base = f"/v1/conversations/{created['conversationId']}"
    # then right after the stop the conversation has ended but the summary is not ready
    assert client.get(base).json()["endTime"] is not None
    assert client.get(base + "/summary").status_code == 404
    assert client.get(base + "/topics").json() == {"topics": []}
    # and after the delay it is
    time.sleep(0.6)
    assert client.get(base + "/summary").status_code == 200
    assert client.get(base + "/topics").json()["topics"]


@pytest.mark.parametrize("path", ["", "/messages", "/summary", "/topics", "/trackers-detected"])
def test_an_unknown_conversation_is_404_with_the_documented_message(
    sandbox_client: SandboxClient, path: str
) -> None:
    response = sandbox_client.get(f"/v1/conversations/1234567890123456{path}")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_a_valid_speaker_event_on_a_live_call_is_accepted(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    created = sandbox_client.start().json()
    path = created["eventUrl"].removeprefix(sandbox.url)
    assert sandbox_client.post(path, EVENT).status_code == 204
    stopped = {"topic": "speaker", "type": "stopped", "timestamp": datetime.now(UTC).isoformat()}
    assert sandbox_client.post(path, stopped).status_code == 204
    assert sandbox.control.calls()[0]["events"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"topic": "music"}, '"topic" must be one of [speaker]'),
        ({"type": "shouting"}, '"type" must be one of [started_speaking'),
        ({"user": None}, '"user" is required'),
        ({"user": {"name": "Ann"}}, '"user.userId" is required'),
        ({"timestamp": "yesterday"}, '"timestamp" must be an ISO-8601'),
        ({"timestamp": None}, '"timestamp" is required'),
    ],
)
def test_an_invalid_event_is_400_naming_the_field(
    sandbox: RunningSandbox, sandbox_client: SandboxClient, change: dict[str, Any], message: str
) -> None:
    created = sandbox_client.start().json()
    response = sandbox_client.post(f"/v1/event/{created['connectionId']}", {**EVENT, **change})
    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def test_an_event_for_an_unknown_or_ended_connection_is_404(sandbox_client: SandboxClient) -> None:
    created = ended_call(sandbox_client)
    assert sandbox_client.post(f"/v1/event/{created['connectionId']}", EVENT).status_code == 404
    assert sandbox_client.post("/v1/event/nope", EVENT).status_code == 404
