"""Server-side dashboard sessions in Redis: the browser holds only a random token.

A session keeps the digest of the key it was opened with (never the key), so each request
finds the key again and a revoked key signs every browser out at once, and a CSRF token that
every form posts back.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Final

import redis

from dialq import routing

# A working day: long enough not to sign an operator out mid-shift.
SESSION_TTL_S: Final = 8 * 3600
_PREFIX: Final = f"{routing.REDIS_PREFIX}dash-session:"


@dataclass(frozen=True)
class DashSession:
    key_digest: str
    csrf: str


def _redis_key(token: str) -> str:
    # The token is stored hashed: a Redis dump does not hand out live sessions.
    return _PREFIX + hashlib.sha256(token.encode()).hexdigest()


def open_session(client: redis.Redis, key_digest: str) -> str:
    """A new session for the key with this digest; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    value = json.dumps({"key_digest": key_digest, "csrf": secrets.token_urlsafe(32)})
    client.set(_redis_key(token), value, ex=SESSION_TTL_S)
    return token


def load_session(client: redis.Redis, token: str) -> DashSession | None:
    raw = client.get(_redis_key(token))
    if raw is None:
        return None
    data = json.loads(raw)
    return DashSession(key_digest=str(data["key_digest"]), csrf=str(data["csrf"]))


def close_session(client: redis.Redis, token: str) -> None:
    client.delete(_redis_key(token))
