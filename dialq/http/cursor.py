"""Page cursors: the (created_at, id) of a page's last call, opaque to clients."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime


def encode_cursor(created_at: datetime, call_id: str) -> str:
    text = f"{created_at.isoformat()}|{call_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; ValueError when it is not one this API gave out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not a cursor") from None
    created, sep, call_id = text.partition("|")
    if not sep or not call_id or not call_id.isprintable():
        raise ValueError("not a cursor")
    instant = datetime.fromisoformat(created)  # ValueError when it is not a time
    if instant.tzinfo is None:
        raise ValueError("not a cursor")
    return instant, call_id
