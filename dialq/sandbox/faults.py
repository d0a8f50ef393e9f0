"""Scripted and seeded-random faults: which request gets which misbehaviour."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from dialq.sandbox.messages import default_message

FaultKind = Literal["status", "hang", "drop", "drop_after", "slow", "malformed"]
KINDS: tuple[FaultKind, ...] = ("status", "hang", "drop", "drop_after", "slow", "malformed")
# These run the request (a start creates its call) and only spoil the reply: the client cannot
# know the outcome, which is the case a careful client must not turn into a second call.
PROCESSING_KINDS = frozenset({"hang", "slow", "drop_after"})
MALFORMED_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


class FaultError(ValueError):
    """Raised when a fault rule or random-fault request is malformed; says which part."""


@dataclass(frozen=True)
class FaultAction:
    kind: FaultKind
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    retry_after: float | str | None = None
    seconds: float | None = None  # hang: None waits until the client gives up
    process: bool = False  # status/malformed: answer after running the request, not instead

    @property
    def processes(self) -> bool:
        return self.kind in PROCESSING_KINDS or self.process

    @classmethod
    def parse(cls, raw: Any) -> FaultAction:
        if not isinstance(raw, dict) or raw.get("type") not in KINDS:
            raise FaultError(f'"action.type" must be one of [{", ".join(KINDS)}]')
        kind: FaultKind = raw["type"]
        seconds = raw.get("seconds")
        if seconds is not None and (not isinstance(seconds, int | float) or seconds < 0):
            raise FaultError('"action.seconds" must be a number >= 0')
        if kind == "slow" and seconds is None:
            raise FaultError('"action.seconds" is required for slow')
        status = raw.get("status", 500 if kind == "status" else 200)
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise FaultError('"action.status" must be an HTTP status code')
        body, content_type = _encode_body(kind, status, raw.get("body"))
        return cls(
            kind=kind,
            status=status,
            body=body,
            content_type=str(raw.get("content_type", content_type)),
            retry_after=raw.get("retry_after"),
            seconds=None if seconds is None else float(seconds),
            process=bool(raw.get("process", False)),
        )


def _encode_body(kind: FaultKind, status: int, body: Any) -> tuple[bytes, str]:
    if body is None:
        if kind == "malformed":
            return MALFORMED_BODY, "text/html"
        return json.dumps({"message": default_message(status)}).encode(), "application/json"
    if isinstance(body, str):
        return body.encode(), "text/html" if kind == "malformed" else "text/plain"
    return json.dumps(body).encode(), "application/json"


@dataclass(frozen=True)
class Match:
    path: str | None = None  # exact, or a prefix when it ends with "*"
    operation: str | None = None
    method: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> Match:
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"path", "operation", "method"}:
            raise FaultError('"match" may only have "path", "operation" and "method"')
        method = raw.get("method")
        return cls(raw.get("path"), raw.get("operation"), method.upper() if method else None)

    def matches(self, path: str, method: str, operation: str | None) -> bool:
        if self.path is not None and not (
            path.startswith(self.path[:-1]) if self.path.endswith("*") else path == self.path
        ):
            return False
        if self.operation is not None and operation != self.operation:
            return False
        return self.method is None or method == self.method


@dataclass
class Rule:
    """Fires on the ``nth`` matching requests since it was added, or on the next ``times``."""

    match: Match
    action: FaultAction
    nth: frozenset[int] | None
    times: int | None
    seen: int = 0
    fired: int = 0

    @classmethod
    def parse(cls, raw: Any) -> Rule:
        if not isinstance(raw, dict):
            raise FaultError("a rule must be an object")
        nth, times = raw.get("nth"), raw.get("times")
        if nth is not None and times is not None:
            raise FaultError('a rule takes "nth" or "times", not both')
        if nth is not None and (
            not isinstance(nth, list) or not all(isinstance(n, int) and n >= 1 for n in nth)
        ):
            raise FaultError('"nth" must be a list of 1-based request counts')
        if times is not None and (not isinstance(times, int) or times < 0):
            raise FaultError('"times" must be an integer >= 0')
        return cls(
            Match.parse(raw.get("match")),
            FaultAction.parse(raw.get("action")),
            None if nth is None else frozenset(nth),
            times,
        )

    def consider(self, path: str, method: str, operation: str | None) -> bool:
        """Count a matching request; True when this rule fires on it."""
        if not self.match.matches(path, method, operation):
            return False
        self.seen += 1
        if self.nth is not None:
            fires = self.seen in self.nth
        else:
            fires = self.times is None or self.seen <= self.times
        self.fired += fires
        return fires

    def view(self) -> dict[str, Any]:
        return {
            "match": {k: v for k, v in vars(self.match).items() if v is not None},
            "action": self.action.kind,
            "status": self.action.status,
            "nth": sorted(self.nth) if self.nth is not None else None,
            "times": self.times,
            "seen": self.seen,
            "fired": self.fired,
        }


@dataclass
class RandomFaults:
    """One draw per matching request from a seeded generator: the same run, the same faults."""

    seed: int
    rates: dict[str, FaultAction]
    weights: dict[str, float]
    match: Match = field(default_factory=Match)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @classmethod
    def parse(
        cls,
        seed: int,
        rates: dict[str, float],
        match: Any = None,
        hang_seconds: float | None = None,
        slow_seconds: float = 1.0,
    ) -> RandomFaults:
        actions = {}
        for kind in rates:
            if kind.isdigit():
                actions[kind] = FaultAction.parse({"type": "status", "status": int(kind)})
            elif kind in ("hang", "slow"):
                seconds = hang_seconds if kind == "hang" else slow_seconds
                actions[kind] = FaultAction.parse({"type": kind, "seconds": seconds})
            elif kind in KINDS and kind != "status":
                actions[kind] = FaultAction.parse({"type": kind})
            else:
                raise FaultError(f'"rates.{kind}" must be a status code or a fault kind')
        if sum(rates.values()) > 1 or any(not 0 <= r <= 1 for r in rates.values()):
            raise FaultError('"rates" must each be in [0, 1] and add up to at most 1')
        return cls(seed, actions, dict(rates), Match.parse(match))

    def pick(self, path: str, method: str, operation: str | None) -> FaultAction | None:
        if not self.match.matches(path, method, operation):
            return None
        draw = self.rng.random()
        for kind, weight in self.weights.items():
            if draw < weight:
                return self.rates[kind]
            draw -= weight
        return None


def parse_rules(raw_rules: Any, path: str = "rules") -> list[Rule]:
    """Rules in the ``POST /_sandbox/faults`` format; an error names the rule by its index."""
    if not isinstance(raw_rules, list):
        raise FaultError(f'"{path}" must be a list')
    parsed = []
    for index, raw in enumerate(raw_rules):
        try:
            parsed.append(Rule.parse(raw))
        except FaultError as exc:
            raise FaultError(f"{path}[{index}]: {exc}") from None
    return parsed


class FaultPlan:
    """Scripted rules first, in the order added, then random faults."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.random: RandomFaults | None = None
        self._armed = 0  # how many of the first rules came from the config

    def add(self, raw_rules: Any) -> int:
        parsed = parse_rules(raw_rules)
        self.rules.extend(parsed)
        return len(parsed)

    def arm(self, configured: list[Rule]) -> None:
        """Put the configured rules first, in place of those armed before; added ones stay."""
        self.rules = configured + self.rules[self._armed :]
        self._armed = len(configured)

    def clear(self) -> None:
        self.rules = []
        self.random = None
        self._armed = 0

    def pick(self, path: str, method: str, operation: str | None) -> FaultAction | None:
        chosen = None
        # Every matching rule counts the request, fired or not, so "nth" means the nth
        # matching request since the rule was added whatever other rules did with it.
        for rule in self.rules:
            if rule.consider(path, method, operation) and chosen is None:
                chosen = rule.action
        if chosen is None and self.random is not None:
            chosen = self.random.pick(path, method, operation)
        return chosen

    def view(self) -> dict[str, Any]:
        armed = self.random
        return {
            "rules": [rule.view() for rule in self.rules],
            "random": None if armed is None else {"seed": armed.seed, "rates": armed.weights},
        }
