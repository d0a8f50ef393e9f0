"""Access tokens shaped like Symbl's JWTs, cached per app the way the real API documents."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class TokenIssuer:
    """Issues tokens and tells valid ones from unknown or expired ones.

    Symbl documents that a second ``token:generate`` within the lifetime returns the cached
    token with the remaining ``expiresIn``; clients that compute expiry from the first answer
    only are caught by that, so it is reproduced here.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._cached: dict[str, tuple[str, float]] = {}
        self._expiry: dict[str, float] = {}

    def issue(self, app_id: str, ttl_s: float) -> IssuedToken:
        now = self._clock()
        cached = self._cached.get(app_id)
        if cached is None or cached[1] <= now:
            self._forget_expired(now)
            cached = (self._mint(app_id, now, ttl_s), now + ttl_s)
            self._cached[app_id] = cached
            self._expiry[cached[0]] = cached[1]
        token, expires_at = cached
        return IssuedToken(token, max(0, math.floor(expires_at - now)))

    def is_valid(self, token: str | None) -> bool:
        if not token:
            return False
        expires_at = self._expiry.get(token)
        return expires_at is not None and self._clock() < expires_at

    def _mint(self, app_id: str, now: float, ttl_s: float) -> str:
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {
            "iss": "dialq-sandbox",
            "sub": app_id,
            "iat": int(now),
            "exp": math.ceil(now + ttl_s),
            "jti": secrets.token_hex(8),
        }
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def _forget_expired(self, now: float) -> None:
        for token in [t for t, expires_at in self._expiry.items() if expires_at <= now]:
            del self._expiry[token]
