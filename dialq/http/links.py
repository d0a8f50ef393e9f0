"""OpenAPI links: what a client (or a stateful test) can do next with what an answer gives.

Named by operationRef (a JSON pointer into the document), so the routes keep the operation ids
FastAPI gives them."""

from __future__ import annotations

from typing import Any, Final


def _ref(method: str, path: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _links(parameter: str, source: str, targets: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {
        name: {"operationRef": _ref(method, path), "parameters": {parameter: source}}
        for name, (method, path) in targets.items()
    }


_CALL = "/v1/calls/{call_id}"
CALL_LINKS: Final = _links(
    "call_id",
    "$response.body#/id",
    {
        "ReadCall": ("get", _CALL),
        "CancelCall": ("post", _CALL + "/cancel"),
        "RedialCall": ("post", _CALL + "/redial"),
        "FollowEvents": ("get", _CALL + "/events"),
        "ReadTranscript": ("get", _CALL + "/transcript"),
        "ReadInsights": ("get", _CALL + "/insights"),
    },
)
_SCHEDULE = "/v1/schedules/{name}"
SCHEDULE_LINKS: Final = _links(
    "name",
    "$response.body#/name",
    {
        "ReadSchedule": ("get", _SCHEDULE),
        "PauseSchedule": ("post", _SCHEDULE + "/pause"),
        "ResumeSchedule": ("post", _SCHEDULE + "/resume"),
        "NextOccurrences": ("get", _SCHEDULE + "/next"),
        "DeleteSchedule": ("delete", _SCHEDULE),
    },
)
