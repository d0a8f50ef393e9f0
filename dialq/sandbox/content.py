"""A conversation's content, generated deterministically from its id.

The same ``conversationId`` always yields the same speakers, messages and insights, so a
client can be tested for what it stores without the sandbox keeping any transcript.
"""

from __future__ import annotations

import functools
import hashlib
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dialq.sandbox.scripts import PEOPLE, SCRIPTS, Script

SPEAKERS = {script.name: max(index for index, _ in script.lines) + 1 for script in SCRIPTS}
# Steps coprime with len(PEOPLE) (12), so stepping from any start names distinct people.
STRIDES = (1, 5, 7, 11)


@dataclass(frozen=True)
class Meeting:
    name: str
    members: tuple[dict[str, str], ...]
    messages: tuple[dict[str, Any], ...]  # times as offsets in seconds from the call's start
    topics: tuple[dict[str, Any], ...]
    questions: tuple[dict[str, Any], ...]
    action_items: tuple[dict[str, Any], ...]
    follow_ups: tuple[dict[str, Any], ...]
    summary: tuple[dict[str, Any], ...]
    trackers: tuple[dict[str, Any], ...]


def iso(epoch_s: float) -> str:
    """``2020-07-10T11:16:21.024Z``: the docs' timestamp format, milliseconds, UTC."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _digest(conversation_id: str, salt: str) -> int:
    # blake2b rather than random.Random: a stop names the organizer, so this is on the hot path.
    raw = hashlib.blake2b(f"{conversation_id}:{salt}".encode(), digest_size=16).digest()
    return int.from_bytes(raw, "big")


def _cast_member(conversation_id: str, script: Script, index: int) -> dict[str, str]:
    pick = _digest(conversation_id, "people")
    start, stride = pick % len(PEOPLE), STRIDES[(pick >> 8) % len(STRIDES)]
    name = PEOPLE[(start + index * stride) % len(PEOPLE)]
    first, last = name.lower().split(" ", 1)
    member_id = str(uuid.UUID(int=_digest(conversation_id, f"member{index}"), version=4))
    return {"id": member_id, "name": name, "email": f"{first}.{last}@example.com"}


def script_for(conversation_id: str) -> Script:
    return SCRIPTS[_digest(conversation_id, "script") % len(SCRIPTS)]


def cast_for(conversation_id: str) -> tuple[Script, tuple[dict[str, str], ...]]:
    """The script and the distinct people who speak in it."""
    script = script_for(conversation_id)
    members = range(SPEAKERS[script.name])
    return script, tuple(_cast_member(conversation_id, script, i) for i in members)


def organizer_for(conversation_id: str) -> dict[str, str]:
    """The first member of ``cast_for``, without working out the others."""
    return _cast_member(conversation_id, script_for(conversation_id), 0)


@functools.lru_cache(maxsize=1024)
def meeting_for(conversation_id: str) -> Meeting:
    script, members = cast_for(conversation_id)
    rng = random.Random(f"dialq-sandbox:{conversation_id}")
    messages = _messages(rng, script, members, conversation_id)
    return Meeting(
        name=script.name,
        members=members,
        messages=messages,
        topics=_topics(rng, script, messages),
        questions=tuple(_question(rng, messages[line], members) for line in script.questions),
        action_items=tuple(
            _action(rng, "action_item", messages[line], members, members[who])
            for line, who in script.action_items
        ),
        follow_ups=tuple(
            _action(rng, "follow_up", messages[line], members, members[who])
            for line, who in script.follow_ups
        ),
        summary=tuple(
            {
                "id": _numeric_id(rng),
                "text": text,
                "messageRefs": [{"id": messages[i]["id"]} for i in refs],
            }
            for text, refs in script.summary
        ),
        trackers=(_tracker(rng, script, messages),),
    )


def _numeric_id(rng: random.Random) -> str:
    return str(rng.randrange(10**15, 10**16))


def _messages(
    rng: random.Random, script: Script, members: tuple[dict[str, str], ...], conversation_id: str
) -> tuple[dict[str, Any], ...]:
    messages = []
    offset = rng.uniform(0.5, 2.0)
    for speaker, text in script.lines:
        duration = round(rng.uniform(2.0, 5.5), 1)
        messages.append(
            {
                "id": _numeric_id(rng),
                "text": text,
                "from": dict(members[speaker]),
                "timeOffset": round(offset, 2),
                "duration": duration,
                "conversationId": conversation_id,
                "phrases": [],
                "polarity": round(rng.uniform(-0.3, 0.8), 3),
            }
        )
        offset += duration + rng.uniform(0.2, 1.0)
    return tuple(messages)


def _topics(
    rng: random.Random, script: Script, messages: tuple[dict[str, Any], ...]
) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "id": _numeric_id(rng),
            "text": text,
            "type": "topic",
            "score": round(rng.uniform(0.5, 0.99), 4),
            "messageIds": [messages[i]["id"] for i in refs],
            "parentRefs": [],
        }
        for text, refs in script.topics
    )


def _by(member: dict[str, str]) -> dict[str, str]:
    return {"id": member["id"], "name": member["name"], "userId": member["email"]}


def _speaker(message: dict[str, Any], members: tuple[dict[str, str], ...]) -> dict[str, str]:
    return next(m for m in members if m["id"] == message["from"]["id"])


def _question(
    rng: random.Random, message: dict[str, Any], members: tuple[dict[str, str], ...]
) -> dict[str, Any]:
    return {
        "id": _numeric_id(rng),
        "text": message["text"],
        "type": "question",
        "score": round(rng.uniform(0.8, 0.99), 4),
        "messageIds": [message["id"]],
        "from": _by(_speaker(message, members)),
    }


def _action(
    rng: random.Random,
    kind: str,
    message: dict[str, Any],
    members: tuple[dict[str, str], ...],
    assignee: dict[str, str],
) -> dict[str, Any]:
    return {
        "id": _numeric_id(rng),
        "text": message["text"],
        "type": kind,
        "score": round(rng.uniform(0.8, 0.99), 4),
        "messageIds": [message["id"]],
        "entities": [
            {
                "type": "person",
                "text": assignee["name"],
                "offset": 0,
                "value": {"assignee": True, "name": assignee["name"]},
            }
        ],
        "phrases": [{"type": "action_phrase", "text": message["text"]}],
        "from": _by(_speaker(message, members)),
        "definitive": kind == "action_item",
        "assignee": {"id": assignee["id"], "name": assignee["name"], "email": assignee["email"]},
    }


def _tracker(
    rng: random.Random, script: Script, messages: tuple[dict[str, Any], ...]
) -> dict[str, Any]:
    name, value, line = script.tracker
    return {
        "id": _numeric_id(rng),
        "name": name,
        "matches": [
            {
                "type": "vocabulary",
                "value": value,
                "messageRefs": [
                    {"id": messages[line]["id"], "text": messages[line]["text"], "offset": -1}
                ],
                "insightRefs": [],
            }
        ],
    }
