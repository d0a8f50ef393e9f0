"""Times given on the command line: an ISO date-time, or a duration from now (`--in 2h`) or
before now (`--since 1d`). Broken ones raise InvalidCallRequest naming the option."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dialq.validation.durations import parse_duration
from dialq.validation.errors import FieldError, InvalidCallRequest

_ISO_RULE = "must be an ISO 8601 date-time (e.g. 2030-01-31T09:00) or a duration (e.g. 2h, 1d)"


def _instant(field: str, text: str) -> datetime:
    """An ISO date-time; without an offset it is this machine's local time."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidCallRequest([FieldError(field, _ISO_RULE)]) from None
    return value if value.tzinfo is not None else value.astimezone()


def _duration(field: str, text: str) -> timedelta | None:
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError:
        return None


def delayed_until(at: str | None, in_: str | None, now: datetime) -> datetime | None:
    """The `not_before` of `dialq call --at T` or `--in D` (one of them, or neither)."""
    if at is not None and in_ is not None:
        raise InvalidCallRequest([FieldError("at", "give --at or --in, not both")])
    if at is not None:
        return _instant("at", at).astimezone(UTC)
    if in_ is not None:
        delay = _duration("in", in_)
        if delay is None:
            raise InvalidCallRequest([FieldError("in", "must be a duration, e.g. 90s, 30m, 2h")])
        return now + delay
    return None


def since(text: str | None, now: datetime) -> datetime | None:
    """`--since 2h` (that long ago) or `--since 2030-01-31T09:00`."""
    if text is None:
        return None
    ago = _duration("since", text)
    return now - ago if ago is not None else _instant("since", text).astimezone(UTC)
