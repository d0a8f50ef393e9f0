"""Reading response headers: Retry-After in both of its forms, and a request id. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Headers a gateway in front of the API may use to name the request (none is documented).
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-correlation-id")


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the server asked us to wait: Retry-After as delta-seconds or as an HTTP-date.

    Case-insensitive lookup; a time in the past gives 0; anything unparseable gives None.
    """
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None or not value.strip():
        return None
    seconds = _delta_seconds(value.strip())
    if seconds is None:
        seconds = _seconds_until_date(value.strip(), now)
    return None if seconds is None else max(0.0, seconds)


def _delta_seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _seconds_until_date(value: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC by RFC 5322; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def first_header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first non-empty value among `names` (lower-case), looked up case-insensitively."""
    for key, value in headers.items():
        if key.lower() in names and value:
            return value
    return None
