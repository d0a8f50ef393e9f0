"""API keys as values: made at random, kept as a digest, checked against scopes. No I/O."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Iterable
from typing import Final

# Visible in a leaked log or a secret scanner's rules as what it is: a dialq key.
KEY_PREFIX: Final = "dq_"
# What `dialq apikey list` shows of a key: the marker and 8 of its 43 random characters.
SHOWN_CHARS: Final = len(KEY_PREFIX) + 8

CALLS_WRITE: Final = "calls:write"
CALLS_READ: Final = "calls:read"
SCHEDULES_WRITE: Final = "schedules:write"
# Reading schedules also comes with calls:read: whoever sees the calls sees what placed them.
SCHEDULES_READ: Final = "schedules:read"
ADMIN: Final = "admin"
# admin is every scope: an operator's key can do what any other key can.
SCOPES: Final = (CALLS_WRITE, CALLS_READ, SCHEDULES_WRITE, SCHEDULES_READ, ADMIN)
DEFAULT_SCOPES: Final = (CALLS_WRITE, CALLS_READ)


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe, shown to its owner once."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """What the database keeps of a key. A plain SHA-256 is enough: the key is 256 random bits,
    so there is nothing to guess, and a fast digest keeps every request's check cheap."""
    return hashlib.sha256(key.encode()).hexdigest()


def shown_part(key: str) -> str:
    return key[:SHOWN_CHARS]


def parse_scopes(given: Iterable[str]) -> list[str]:
    """`--scope a,b --scope c` as a list in SCOPES' order; ValueError names an unknown one."""
    wanted = {part.strip() for item in given for part in item.split(",") if part.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {', '.join(unknown)}: choose from {', '.join(SCOPES)}")
    return [scope for scope in SCOPES if scope in wanted]


def allows(scopes: Collection[str], needed: str, *or_: str) -> bool:
    """Whether a key with `scopes` may do what needs `needed` (or any of `or_`)."""
    return ADMIN in scopes or any(scope in scopes for scope in (needed, *or_))
