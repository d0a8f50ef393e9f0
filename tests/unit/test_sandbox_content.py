"""Conversation content: deterministic per id, and shaped like a short real meeting."""

from __future__ import annotations

from dialq.sandbox.content import iso, meeting_for


def test_the_same_conversation_id_always_yields_the_same_meeting() -> None:
    meeting_for.cache_clear()
    first = meeting_for("5687907911204864")
    meeting_for.cache_clear()
    assert meeting_for("5687907911204864") == first
    assert meeting_for("5687907911204865") != first


def test_a_meeting_has_speakers_messages_and_insights_that_refer_to_its_messages() -> None:
    meeting = meeting_for("1234567890123456")
    message_ids = {m["id"] for m in meeting.messages}
    member_ids = {m["id"] for m in meeting.members}
    assert 2 <= len(meeting.members) <= 4
    assert len(meeting.messages) >= 10
    assert {m["from"]["id"] for m in meeting.messages} <= member_ids
    assert meeting.topics
    assert meeting.questions
    assert meeting.action_items
    assert meeting.follow_ups
    for insight in (
        *meeting.topics,
        *meeting.questions,
        *meeting.action_items,
        *meeting.follow_ups,
    ):
        assert set(insight["messageIds"]) <= message_ids
    assert all(m["email"].endswith("@example.com") for m in meeting.members)
    offsets = [m["timeOffset"] for m in meeting.messages]
    assert offsets == sorted(offsets)


def test_timestamps_are_iso_utc_with_milliseconds() -> None:
    assert iso(1594379781.024) == "2020-07-10T11:16:21.024Z"
