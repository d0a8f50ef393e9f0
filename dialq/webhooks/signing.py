"""Webhook signatures: HMAC-SHA256 over "<unix seconds>.<raw body>", with a timestamp.

The header reads ``X-Dialq-Signature: t=1732456800,v1=<hex>``. The timestamp is signed too,
so a captured request cannot be replayed later than the receiver's tolerance. Several ``v1=``
values may appear (a receiver accepts any that matches), which allows rotating the secret.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Dialq-Signature"
EVENT_ID_HEADER = "X-Dialq-Event-Id"
DEFAULT_TOLERANCE_S = 300.0


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` under ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The value of the X-Dialq-Signature header for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={sign(secret, body, timestamp)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when ``header`` signs exactly ``body`` with ``secret`` within ``tolerance_s`` of now.

    ``body`` must be the raw bytes received, before any JSON parsing. Comparison is
    constant-time; a malformed header is simply not valid.
    """
    timestamp, signatures = _parse(header)
    if timestamp is None or not signatures or abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp)
    # Every candidate is compared, so timing tells nothing about which one matched.
    matches = [hmac.compare_digest(expected, candidate) for candidate in signatures]
    return any(matches)


def _parse(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    return timestamp, signatures
