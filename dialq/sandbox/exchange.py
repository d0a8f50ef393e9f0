"""One request as the API handlers see it: parsed once by the outer app, logged as it goes."""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from dialq.sandbox.requestlog import masked_body


@dataclass
class Exchange:
    """The body is parsed here once, because the fault layer needs the operation before the
    handlers run; handlers read it from the scope instead of reading the stream again."""

    body: Any  # the parsed JSON, the raw text when it is not JSON, None when empty
    token: str | None
    host: str | None
    operation: str | None
    entry: dict[str, Any]


def open_exchange(
    scope: MutableMapping[str, Any],
    raw: bytes,
    open_entry: Any,
    now: float,
    vouched: Callable[[str, str | None, Any], bool],
) -> Exchange:
    """The request parsed once and logged; its body is logged only when ``vouched(path, token,
    body)`` says the sender is known (a valid token, or the right credentials)."""
    token = bearer = host = call_id = None
    # ASGI servers lower-case header names, so bytes compare directly; the log keeps the raw
    # list and masks it when read, which keeps this per-request path cheap.
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            token = value.decode("latin-1")
        elif name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].decode("latin-1").strip()
        elif name == b"host":
            host = value.decode("latin-1")
        elif name == b"x-dialq-call-id":
            call_id = value.decode("latin-1")
    body = _parse(raw)
    operation = body.get("operation") if isinstance(body, dict) else None
    kept = vouched(scope["path"], token or bearer, body)
    entry = open_entry(
        body_bytes=len(raw) if kept else 0,
        time=now,
        method=scope["method"],
        path=scope["path"],
        query=scope["query_string"].decode("latin-1"),
        operation=operation if isinstance(operation, str) else None,
        call_id=call_id,
        headers=scope["headers"],
        body=masked_body(body) if kept else None,
        body_size=len(raw),
    )
    return Exchange(body, token or bearer, host, entry["operation"], entry)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer not yet sent, so a fault can delay, replace or withhold it."""

    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None
    content_type: str = "application/json"


def json_reply(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(value, separators=(",", ":")).encode(), headers)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return json_reply({"message": message}, status, headers)


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")[:2000]
