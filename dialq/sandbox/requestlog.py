"""The record of every API request the sandbox received, with secrets masked."""

from __future__ import annotations

from collections import deque
from typing import Any

MASK = "***"
SECRET_HEADERS = frozenset({"x-api-key", "authorization"})


def masked_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-cased header names to values, with credentials replaced by ``***``."""
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("latin-1").lower()
        headers[name] = MASK if name in SECRET_HEADERS else value_bytes.decode("latin-1")
    return headers


def masked_body(body: Any) -> Any:
    if isinstance(body, dict) and "appSecret" in body:
        return {**body, "appSecret": MASK}
    return body


class RequestLog:
    """Entries in arrival order, numbered from 1; only the newest ``limit`` are kept."""

    def __init__(self, limit: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=max(1, limit))
        self._seq = 0

    def open_entry(self, **fields: Any) -> dict[str, Any]:
        """Append an entry now, so its sequence number reflects arrival; fill it in later."""
        self._seq += 1
        entry = {
            "seq": self._seq,
            "status": None,
            "fault": None,
            "delivered": False,
            "connectionId": None,
            "conversationId": None,
            **fields,
        }
        self._entries.append(entry)
        return entry

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        """Copies with headers as a masked dict (entries hold the server's raw header list)."""
        return [
            {**entry, "headers": masked_headers(entry["headers"])}
            for entry in self._entries
            if entry["seq"] > since
        ]

    def clear(self, limit: int) -> None:
        self._entries = deque(maxlen=max(1, limit))
