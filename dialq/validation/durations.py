"""Durations as people type them ("90", "30m", "1h30m", "400d") and as we print them."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
# What format_duration writes: hours, not days, since a call's limits are counted in hours.
_FORMAT_UNITS = ("h", "m", "s")
# Units in falling order, each at most once, so "1h30m" parses and "30m1h" or "1m1m" do not.
_DURATION = re.compile(
    r"(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?"
)
# Bounds the digits so that a typo cannot build a number larger than any sane duration.
_MAX_DIGITS = 9


def parse_duration(text: str) -> int:
    """Seconds in ``text``: a bare number of seconds ("90") or d/h/m/s parts ("1h30m", "2d").

    Raises ValueError, quoting the text and the accepted forms, for anything else.
    """
    cleaned = text.strip().lower()
    if cleaned.isascii() and cleaned.isdigit() and len(cleaned) <= _MAX_DIGITS:
        return int(cleaned)
    match = _DURATION.fullmatch(cleaned)
    parts = match.groupdict() if match and cleaned else {}
    values = {unit: digits for unit, digits in parts.items() if digits is not None}
    if not values or any(len(digits) > _MAX_DIGITS for digits in values.values()):
        raise ValueError(
            f"not a duration: {text[:40]!r}; use seconds or d/h/m/s parts, e.g. 90, 30m, 1h30m, 2d"
        )
    return sum(int(digits) * _UNIT_SECONDS[unit] for unit, digits in values.items())


def format_duration(seconds: int | float) -> str:
    """``seconds``, rounded down, as "1h30m", "2m30s", "45s" or "0s" (what parse_duration reads)."""
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    remaining = int(seconds)
    parts: list[str] = []
    for unit in _FORMAT_UNITS:
        count, remaining = divmod(remaining, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
