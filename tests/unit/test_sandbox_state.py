"""The sandbox's tokens and call book under a fake clock: no servers, no sleeps."""

from __future__ import annotations

import base64
import json

import pytest

from dialq.sandbox.state import Call, CallBook
from dialq.sandbox.tokens import TokenIssuer


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


ENDPOINT = {"type": "pstn", "phoneNumber": "14082924837", "uri": None}


def start(
    book: CallBook, limit: int = 5, seconds: float | tuple[float, float] | None = None
) -> Call | None:
    return book.start(limit, seconds, ENDPOINT, None, None)


def test_a_second_token_request_returns_the_same_token_with_less_time_left() -> None:
    # given a token issued at t0 with a 100 s lifetime
    clock = FakeClock()
    issuer = TokenIssuer(clock)
    first = issuer.issue("app", 100.0)
    # when another is requested 30.5 s later
    clock.now += 30.5
    second = issuer.issue("app", 100.0)
    # then it is the same token with the remaining lifetime
    assert (first.expires_in, second.expires_in) == (100, 69)
    assert second.access_token == first.access_token


def test_a_token_is_valid_until_its_lifetime_ends_then_a_new_one_is_issued() -> None:
    clock = FakeClock()
    issuer = TokenIssuer(clock)
    token = issuer.issue("app", 10.0).access_token
    clock.now += 9.999
    assert issuer.is_valid(token)
    clock.now += 0.001
    assert not issuer.is_valid(token)
    renewed = issuer.issue("app", 10.0)
    assert renewed.access_token != token
    assert renewed.expires_in == 10
    assert issuer.is_valid(renewed.access_token)


def test_a_token_is_jwt_shaped_with_an_exp_claim() -> None:
    clock = FakeClock(1000.0)
    token = TokenIssuer(clock).issue("app", 60.0).access_token
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] == 1060
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["typ"] == "JWT"
    assert signature


@pytest.mark.parametrize("token", [None, "", "not-a-token", "a.b.c"])
def test_unknown_tokens_are_invalid(token: str | None) -> None:
    assert not TokenIssuer(FakeClock()).is_valid(token)


def test_starts_beyond_the_limit_are_refused_until_a_call_ends() -> None:
    # given a full book of two calls
    book = CallBook(FakeClock(), seed=0)
    first, second = start(book, limit=2), start(book, limit=2)
    assert first is not None
    assert second is not None
    # then a third is refused, and accepted once one ends
    assert start(book, limit=2) is None
    assert book.end(first.connection_id, "stop") is first
    assert start(book, limit=2) is not None
    assert book.live_count() == 2


def test_a_call_ends_by_itself_exactly_at_its_deadline() -> None:
    # given a 2-second call
    clock = FakeClock()
    book = CallBook(clock, seed=0)
    call = start(book, limit=1, seconds=2.0)
    assert call is not None
    # when the clock passes its deadline, with nobody asking in between
    clock.now += 1.999
    assert book.live_count() == 1
    clock.now += 0.5
    # then it has ended as of the deadline, not as of the look
    assert book.live_count() == 0
    assert call.ended_at == call.started_at + 2.0
    assert call.ended_by == "duration"
    assert start(book, limit=1) is not None


def test_an_ended_call_cannot_be_stopped_again() -> None:
    book = CallBook(FakeClock(), seed=0)
    call = start(book)
    assert call is not None
    connection_id = call.connection_id
    hung_up = book.end(connection_id, "hangup")
    stopped = book.end(connection_id, "stop")
    assert hung_up is call
    assert stopped is None
    assert call.ended_by == "hangup"


def test_call_lengths_drawn_from_a_range_repeat_for_the_same_seed() -> None:
    def lengths(seed: int) -> list[float]:
        clock = FakeClock()
        book = CallBook(clock, seed)
        calls = [start(book, limit=10, seconds=(4.0, 9.0)) for _ in range(5)]
        return [c.deadline - c.started_at for c in calls if c and c.deadline]

    assert lengths(7) == lengths(7)
    assert lengths(7) != lengths(8)
    assert all(4.0 <= length <= 9.0 for length in lengths(7))


def test_conversation_ids_are_16_digit_strings_and_connection_ids_uuids() -> None:
    book = CallBook(FakeClock(), seed=0)
    calls = [start(book, limit=100) for _ in range(50)]
    assert all(c is not None and len(c.conversation_id) == 16 for c in calls)
    assert all(c is not None and c.conversation_id.isdigit() for c in calls)
    assert len({c.connection_id for c in calls if c}) == 50
