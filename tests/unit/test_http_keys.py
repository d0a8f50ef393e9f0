"""API keys and page cursors as values: no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialq.http.cursor import decode_cursor, encode_cursor
from dialq.http.keys import (
    ADMIN,
    CALLS_READ,
    CALLS_WRITE,
    allows,
    key_digest,
    new_key,
    parse_scopes,
    shown_part,
)


def test_a_new_key_is_marked_random_and_kept_as_a_digest_that_does_not_contain_it() -> None:
    # given two new keys
    first, second = new_key(), new_key()
    # then each is marked as dialq's, long and different, and its digest is fixed and opaque
    assert first.startswith("dq_")
    assert len(first) >= 40
    assert first != second
    assert key_digest(first) == key_digest(first)
    assert key_digest(first) != key_digest(second)
    assert first[3:] not in key_digest(first)
    assert shown_part(first) == first[:11]


@pytest.mark.parametrize(
    ("given", "scopes"),
    [
        (["calls:read"], [CALLS_READ]),
        (["calls:read,calls:write"], [CALLS_WRITE, CALLS_READ]),
        (["admin", " calls:read "], [CALLS_READ, ADMIN]),
        (["calls:write", "calls:write"], [CALLS_WRITE]),
    ],
)
def test_scopes_are_read_from_repeated_or_comma_separated_options(
    given: list[str], scopes: list[str]
) -> None:
    assert parse_scopes(given) == scopes


def test_an_unknown_scope_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="calls:delete"):
        parse_scopes(["calls:read,calls:delete"])


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        ({CALLS_READ}, CALLS_READ, True),
        ({CALLS_READ}, CALLS_WRITE, False),
        ({CALLS_WRITE}, CALLS_READ, False),
        ({ADMIN}, CALLS_WRITE, True),
        ({ADMIN}, ADMIN, True),
        ({CALLS_WRITE, CALLS_READ}, ADMIN, False),
    ],
)
def test_admin_holds_every_scope_and_other_scopes_only_themselves(
    held: set[str], needed: str, allowed: bool
) -> None:
    assert allows(held, needed) is allowed


def test_a_cursor_names_the_position_it_was_made_from() -> None:
    # given the last call of a page
    created = datetime(2030, 1, 31, 9, 0, 0, 123456, tzinfo=UTC)
    # when its cursor is made and read back / then it is that position
    assert decode_cursor(encode_cursor(created, "c0ffee-id")) == (created, "c0ffee-id")


@pytest.mark.parametrize("cursor", ["", "nope", "!!!", encode_cursor(datetime.now(UTC), "")])
def test_a_cursor_not_given_out_by_the_api_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (the routes turn any of them into a 422)
        decode_cursor(cursor)
