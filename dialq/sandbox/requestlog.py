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


# What an entry costs besides its body and headers: the dict, its numbers, ids and path.
ENTRY_OVERHEAD_BYTES = 512


def entry_size(entry: dict[str, Any], body_bytes: int) -> int:
    """Bytes an entry holds, counted from what the client chose: headers, query, path, body."""
    headers = sum(len(name) + len(value) for name, value in entry.get("headers") or ())
    chosen = (entry.get(key) or "" for key in ("path", "query", "call_id", "operation"))
    return ENTRY_OVERHEAD_BYTES + headers + sum(len(text) for text in chosen) + body_bytes


class RequestLog:
    """Entries in arrival order, numbered from 1; the newest ``limit`` are kept, and no more
    than ``max_bytes`` in all (the oldest dropped first; the newest is always kept)."""

    def __init__(self, limit: int, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._entries: deque[dict[str, Any]] = deque()
        self._sizes: deque[int] = deque()
        self._limit = max(1, limit)
        self._max_bytes = max_bytes
        self._seq = 0
        self.bytes_held = 0

    def open_entry(self, body_bytes: int = 0, **fields: Any) -> dict[str, Any]:
        """Append an entry now, so its sequence number reflects arrival; fill it in later.

        ``body_bytes``: what the kept body costs (0 when none is kept).
        """
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
        size = entry_size(entry, body_bytes)
        self._entries.append(entry)
        self._sizes.append(size)
        self.bytes_held += size
        while len(self._entries) > 1 and (
            len(self._entries) > self._limit or self.bytes_held > self._max_bytes
        ):
            self._entries.popleft()
            self.bytes_held -= self._sizes.popleft()
        return entry

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        """Copies with headers as a masked dict (entries hold the server's raw header list)."""
        return [
            {**entry, "headers": masked_headers(entry["headers"])}
            for entry in self._entries
            if entry["seq"] > since
        ]

    def clear(self, limit: int, max_bytes: int | None = None) -> None:
        self._entries.clear()
        self._sizes.clear()
        self._limit = max(1, limit)
        self._max_bytes = self._max_bytes if max_bytes is None else max_bytes
        self.bytes_held = 0
