"""The one exponential backoff, both jitters: pure, table-tested, randomness fixed."""

from __future__ import annotations

import random

import pytest

from dialq.backoff import backoff_s


class Draw(random.Random):
    """uniform(a, b) returns a + (b - a) * at: 0 reads the floor, 1 the ceiling."""

    def __init__(self, at: float) -> None:
        super().__init__(0)
        self.at = at

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.at


@pytest.mark.parametrize(
    ("attempt", "base_s", "max_s", "ceiling_s"),
    [
        (1, 2.0, 60.0, 2.0),
        (2, 2.0, 60.0, 4.0),
        (3, 2.0, 60.0, 8.0),
        (5, 2.0, 60.0, 32.0),
        (6, 2.0, 60.0, 60.0),
        (4, 1.0, 5.0, 5.0),
        (10_000, 2.0, 60.0, 60.0),  # the exponent is bounded: no overflow
        (12, 5.0, 3600.0, 3600.0),
    ],
)
def test_the_ceiling_doubles_per_attempt_up_to_the_cap(
    attempt: int, base_s: float, max_s: float, ceiling_s: float
) -> None:
    # full jitter spans [0, ceiling]; equal jitter spans [ceiling / 2, ceiling]
    assert backoff_s(attempt, Draw(1.0), base_s=base_s, max_s=max_s) == ceiling_s
    assert backoff_s(attempt, Draw(0.0), base_s=base_s, max_s=max_s) == 0.0
    equal = {"base_s": base_s, "max_s": max_s, "jitter": "equal"}
    assert backoff_s(attempt, Draw(1.0), **equal) == ceiling_s  # type: ignore[arg-type]
    assert backoff_s(attempt, Draw(0.0), **equal) == ceiling_s / 2  # type: ignore[arg-type]


def test_full_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(7)
    draws = [backoff_s(4, rng, base_s=2.0, max_s=60.0) for _ in range(500)]
    assert all(0.0 <= d <= 16.0 for d in draws)
    assert min(draws) < 2.0 < 14.0 < max(draws)


def test_the_same_seed_gives_the_same_delays() -> None:
    first = [backoff_s(n, random.Random(3), base_s=2.0, max_s=60.0) for n in range(1, 8)]
    again = [backoff_s(n, random.Random(3), base_s=2.0, max_s=60.0) for n in range(1, 8)]
    assert first == again


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_s(0, random.Random(1), base_s=2.0, max_s=60.0)
