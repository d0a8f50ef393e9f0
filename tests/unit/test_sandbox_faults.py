"""Choosing faults: rule counting, precedence and seeded random faults, without servers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dialq.sandbox.faults import FaultError, FaultPlan, RandomFaults

CONNECT = "/v1/endpoint:connect"
START = {"path": CONNECT, "operation": "start"}


def kinds(plan: FaultPlan, operations: list[str | None]) -> list[Any]:
    picked = [plan.pick(CONNECT, "POST", op) for op in operations]
    return [None if action is None else (action.kind, action.status) for action in picked]


def test_nth_counts_matching_requests_whatever_other_rules_did_with_them() -> None:
    # given 429 on the 1st and 2nd starts and 503 on the 3rd
    plan = FaultPlan()
    plan.add(
        [
            {"match": START, "nth": [1, 2], "action": {"type": "status", "status": 429}},
            {"match": START, "nth": [3], "action": {"type": "status", "status": 503}},
        ]
    )
    # when starts and a stop arrive
    picked = kinds(plan, ["start", "stop", "start", "start", "start"])
    # then the stop is not counted, and each start gets its scripted answer
    assert picked == [("status", 429), None, ("status", 429), ("status", 503), None]


def test_times_fires_on_the_next_n_matching_requests_only() -> None:
    plan = FaultPlan()
    plan.add([{"match": {"operation": "stop"}, "times": 2, "action": {"type": "drop"}}])
    picked = kinds(plan, ["start", "stop", "stop", "stop"])
    assert picked == [None, ("drop", 200), ("drop", 200), None]


def test_a_rule_without_nth_or_times_fires_on_every_match() -> None:
    plan = FaultPlan()
    plan.add([{"match": {"path": "/v1/*"}, "action": {"type": "status", "status": 500}}])
    assert kinds(plan, ["start", "stop"]) == [("status", 500), ("status", 500)]
    assert plan.pick("/oauth2/token:generate", "POST", None) is None


def test_a_status_fault_without_a_body_says_what_symbl_says() -> None:
    plan = FaultPlan()
    plan.add([{"times": 1, "action": {"type": "status", "status": 429}}])
    action = plan.pick(CONNECT, "POST", "start")
    assert action is not None
    assert json.loads(action.body)["message"].startswith("Maximum number of concurrent jobs")
    assert not action.processes


@pytest.mark.parametrize(
    ("kind", "processes"),
    [
        ("status", False),
        ("drop", False),
        ("malformed", False),
        ("hang", True),
        ("slow", True),
        ("drop_after", True),
    ],
)
def test_only_hang_slow_and_drop_after_process_the_request(kind: str, processes: bool) -> None:
    plan = FaultPlan()
    plan.add([{"action": {"type": kind, "seconds": 1}}])
    action = plan.pick(CONNECT, "POST", "start")
    assert action is not None
    assert action.processes is processes


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ({"action": {"type": "explode"}}, "action.type"),
        ({"nth": [0], "action": {"type": "drop"}}, "nth"),
        ({"nth": [1], "times": 1, "action": {"type": "drop"}}, "not both"),
        ({"times": -1, "action": {"type": "drop"}}, "times"),
        ({"match": {"host": "x"}, "action": {"type": "drop"}}, "match"),
        ({"action": {"type": "status", "status": 99}}, "action.status"),
        ({"action": {"type": "slow"}}, "action.seconds"),
    ],
)
def test_malformed_rules_are_refused_naming_the_part(rule: dict[str, Any], complaint: str) -> None:
    with pytest.raises(FaultError, match=complaint):
        FaultPlan().add([rule])


def test_random_faults_repeat_for_the_same_seed_and_roughly_match_the_rates() -> None:
    def run(seed: int) -> list[str | None]:
        faults = RandomFaults.parse(seed, {"500": 0.2, "429": 0.1, "drop": 0.05})
        picked = [faults.pick(CONNECT, "POST", "start") for _ in range(2000)]
        return [
            None if a is None else (str(a.status) if a.kind == "status" else a.kind) for a in picked
        ]

    first = run(3)
    assert first == run(3)
    assert first != run(4)
    assert 300 < first.count("500") < 500
    assert 130 < first.count("429") < 270
    assert 50 < first.count("drop") < 150


@pytest.mark.parametrize("rates", [{"teapot": 0.1}, {"500": 0.7, "503": 0.6}, {"500": -0.1}])
def test_random_fault_rates_must_name_known_kinds_and_add_up_to_at_most_one(
    rates: dict[str, float],
) -> None:
    with pytest.raises(FaultError):
        RandomFaults.parse(0, rates)
