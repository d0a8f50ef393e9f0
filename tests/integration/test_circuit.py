"""The per-account API circuit on a real Redis: who may probe, and when another may."""

from __future__ import annotations

import redis

from dialq.circuit import Circuit, all_clear

T0 = 1_000_000.0


def _open(circuit: Circuit, at: float) -> float:
    """Three outage failures in a row: the circuit opens; returns when it reopens."""
    reopens = None
    for n in range(3):
        reopens = circuit.failed("a", f"failing{n}", at)
    assert reopens is not None
    return reopens


def test_a_probe_is_claimed_only_once_the_cooldown_is_over_and_only_by_one_call(
    redis_url: str,
) -> None:
    circuit = Circuit(redis.Redis.from_url(redis_url), cooldown_s=5, max_cooldown_s=30)
    # given a closed circuit, nobody probes
    assert not circuit.claim_due_probe("a", "w1", T0)
    # when it opens, then no probe before its cooldown ends
    reopens = _open(circuit, T0)
    assert reopens == T0 + 5
    assert not circuit.claim_due_probe("a", "w1", reopens - 0.1)
    # and after it, exactly one call probes
    assert circuit.claim_due_probe("a", "w1", reopens)
    assert not circuit.claim_due_probe("a", "w2", reopens + 1)
    assert circuit.admit("a", "w1", reopens + 1).probe
    assert not circuit.admit("a", "w2", reopens + 1).allowed


def test_releasing_the_probe_lets_another_call_probe_but_only_the_probe_can_release_it(
    redis_url: str,
) -> None:
    circuit = Circuit(redis.Redis.from_url(redis_url), cooldown_s=5, max_cooldown_s=30)
    reopens = _open(circuit, T0)
    assert circuit.claim_due_probe("a", "w1", reopens)
    # when another call says it will not probe, nothing changes
    circuit.release_probe("a", "w2")
    assert not circuit.claim_due_probe("a", "w2", reopens)
    # when the probe itself will not (it is over, or cannot dial now), another may at once
    circuit.release_probe("a", "w1")
    assert circuit.claim_due_probe("a", "w2", reopens)


def test_a_failed_probe_frees_the_probe_and_reopens_after_twice_the_cooldown(
    redis_url: str,
) -> None:
    circuit = Circuit(redis.Redis.from_url(redis_url), cooldown_s=5, max_cooldown_s=30)
    reopens = _open(circuit, T0)
    assert circuit.admit("a", "w1", reopens).probe
    # when the probe fails (an outage answer, or no answer at all)
    again = circuit.failed("a", "w1", reopens + 1)
    # then the circuit reopens 10 s later, and the next probe may be anyone
    assert again == reopens + 1 + 10
    assert not circuit.claim_due_probe("a", "w2", again - 0.1)
    assert circuit.claim_due_probe("a", "w2", again)


def test_all_clear_holds_exactly_while_every_admit_would_answer_allowed_and_clean(
    redis_url: str,
) -> None:
    # given an API circuit and a credentials hold sharing one Redis, nothing on record
    client = redis.Redis.from_url(redis_url)
    api, credentials = Circuit(client), Circuit(client, threshold=1, kind="credentials")
    assert all_clear("a", api, credentials)
    assert api.admit("a", "c1", T0).clean
    assert credentials.admit("a", "c1", T0).clean
    # when one failure is counted against account a's credentials (below nothing's threshold
    # for the API circuit, but on record all the same)
    credentials.failed("a", "c1", T0, "401")
    # then a is not clear (its admit would not be clean), and account b still is
    assert not all_clear("a", api, credentials)
    assert not credentials.admit("a", "c2", T0).clean
    assert all_clear("b", api, credentials)
    # and one API failure, not yet enough to open, is on record too
    api.failed("b", "c3", T0)
    assert not all_clear("b", api, credentials)
    assert not api.admit("b", "c3", T0).clean


def test_all_clear_tells_nothing_for_circuits_on_different_clients_or_none(
    redis_url: str,
) -> None:
    first, second = (
        Circuit(redis.Redis.from_url(redis_url)),
        Circuit(redis.Redis.from_url(redis_url), kind="credentials"),
    )
    assert not all_clear("a", first, second)  # the caller asks each instead
    assert not all_clear("a")
