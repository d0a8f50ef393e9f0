"""The 429 redial delay: pure, tested with a seeded random source."""

from __future__ import annotations

import random

import pytest

from dialq.publisher import MAX_COUNTDOWN_S, capacity_delay_s


@pytest.mark.parametrize(
    ("retry_after_s", "expected"),
    [(0.0, 0.0), (3.0, 3.0), (-5.0, 0.0), (600.0, MAX_COUNTDOWN_S)],
)
def test_a_retry_after_header_is_honoured_within_the_countdown_cap(
    retry_after_s: float, expected: float
) -> None:
    assert capacity_delay_s(retry_after_s, 5.0, random.Random(1)) == expected


def test_without_retry_after_the_delay_is_jittered_around_the_base() -> None:
    rng = random.Random(42)
    delays = [capacity_delay_s(None, 4.0, rng) for _ in range(500)]
    assert min(delays) >= 2.0
    assert max(delays) <= 6.0
    assert len({round(d, 3) for d in delays}) > 400  # spread out, not in lockstep


def test_the_jittered_delay_never_exceeds_the_countdown_cap() -> None:
    assert capacity_delay_s(None, 59.0, random.Random(3)) <= MAX_COUNTDOWN_S
