"""Queries on the HTTP API's keys: rows hold a key's digest, never the key."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dialq.store.tables import ApiKey

# Key ids are UUID4 strings: a prefix is only ever these characters (no LIKE wildcard).
_ID_PREFIX = re.compile(r"[0-9a-f-]{4,36}")


class AmbiguousKeyId(LookupError):
    """Raised when a prefix starts the ids of more than one key."""


def add_key(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def find_active(session: Session, key_sha256: str) -> ApiKey | None:
    """The unrevoked key with this digest, if any."""
    query = select(ApiKey).where(ApiKey.key_sha256 == key_sha256, ApiKey.revoked_at.is_(None))
    return session.scalars(query).first()


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def find_key(session: Session, given: str) -> ApiKey | None:
    """The key `given` names: its whole id, or a unique start of it (4 characters or more)."""
    key = session.get(ApiKey, given)
    prefix = given.lower()
    if key is not None or not _ID_PREFIX.fullmatch(prefix):
        return key
    found = session.scalars(select(ApiKey).where(ApiKey.id.startswith(prefix)).limit(2)).all()
    if len(found) > 1:
        raise AmbiguousKeyId(given)
    return found[0] if found else None


def revoke(session: Session, key_id: str, now: datetime) -> bool:
    """Revoke a key from now on; False when it was revoked already."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(getattr(result, "rowcount", 0))
