"""What a sandbox is told to be: credentials, limits, call lengths, timing of insights."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from dialq.sandbox.faults import FaultError, RandomFaults, parse_rules

CallSeconds = float | tuple[float, float] | None
RetryAfterFormat = Literal["seconds", "date"]

# Credentials identify the account a client has already been configured with; changing them
# under a running client would only test the client's configuration, not its behaviour.
FROZEN_FIELDS = frozenset({"app_id", "app_secret", "control_token"})


class ConfigError(ValueError):
    """Raised when a configuration field is unknown, frozen or has a value of the wrong shape."""


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves; every field but the credentials can change at runtime.

    - ``app_id``/``app_secret``: the only credentials ``/oauth2/token:generate`` accepts.
    - ``token_ttl_s``: lifetime of a new token; a cached token is returned until it expires.
    - ``max_concurrent``: live calls allowed before a start answers 429.
    - ``call_seconds``: how long a call lasts before the far end hangs up: a fixed number, a
      ``(min, max)`` range drawn with ``seed``, or None for never.
    - ``seed``: seeds call lengths drawn from a range (and random faults from ``fault_rates``).
    - ``insights_delay_s``: processing time after a call ends before insights and summary appear.
    - ``retry_after_s``/``retry_after_format``: a Retry-After header on capacity 429s, in
      delta-seconds or as an HTTP date; None sends none, as the real API does.
    - ``nanp_only``: reject PSTN numbers outside the North American Numbering Plan.
    - ``public_host``: ``host:port`` (or ``https://host``) used in eventUrl/resultWebSocketUrl;
      None uses the Host header the client sent.
    - ``fault_rates``: random faults armed at start and after every reset, e.g. ``{"500": 0.1}``.
    - ``fault_rules``: scripted fault rules (the ``POST /_sandbox/faults`` format) armed at
      start and after every reset, ahead of any rule added later.
    - ``request_log_limit``: how many request-log entries are kept (oldest dropped first).
    - ``request_log_max_bytes``: what the kept entries may hold in all (bodies, headers);
      the oldest are dropped first. A request without a valid token or credentials is logged
      without its body.
    - ``max_body_bytes``: a larger request body is answered 413 and never read whole.
    - ``control_token``: when set, the control API answers only requests that carry it
      (``Authorization: Bearer <token>``); it cannot change at runtime.
    """

    app_id: str = "sandbox-app"
    app_secret: str = "sandbox-secret"  # noqa: S105  (a sandbox's well-known default)
    token_ttl_s: float = 86400.0
    max_concurrent: int = 5
    call_seconds: CallSeconds = None
    seed: int = 0
    insights_delay_s: float = 0.0
    retry_after_s: float | None = None
    retry_after_format: RetryAfterFormat = "seconds"
    nanp_only: bool = True
    public_host: str | None = None
    fault_rates: dict[str, float] = field(default_factory=dict)
    fault_rules: list[dict[str, Any]] = field(default_factory=list)
    request_log_limit: int = 100_000
    request_log_max_bytes: int = 64 * 1024 * 1024
    max_body_bytes: int = 1024 * 1024
    control_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check(self)

    def updated(self, changes: dict[str, Any]) -> SandboxConfig:
        """A copy with ``changes`` applied; JSON-shaped values (lists for ranges) are accepted."""
        known = {f.name for f in fields(self)}
        for name in changes:
            if name not in known:
                raise ConfigError(f'"{name}" is not a sandbox setting')
            if name in FROZEN_FIELDS:
                raise ConfigError(f'"{name}" cannot be changed at runtime')
        coerced = dict(changes)
        if "call_seconds" in coerced:
            coerced["call_seconds"] = parse_call_seconds(coerced["call_seconds"])
        return replace(self, **coerced)

    def public_view(self) -> dict[str, Any]:
        """Every field, the secret masked, ranges as lists: what the control API shows."""
        view = asdict(self)
        view["app_secret"] = "***"  # noqa: S105  (the mask, not a secret)
        view["control_token"] = None if self.control_token is None else "***"
        if isinstance(self.call_seconds, tuple):
            view["call_seconds"] = list(self.call_seconds)
        return view


def parse_call_seconds(value: object) -> CallSeconds:
    """None, a number, a ``[min, max]`` pair, or the CLI's ``"S"`` / ``"MIN-MAX"``."""
    if value is None:
        return None
    if isinstance(value, str):
        low, sep, high = value.partition("-")
        try:
            return (float(low), float(high)) if sep else float(low)
        except ValueError:
            raise ConfigError(f'"call_seconds" must be S or MIN-MAX, got {value!r}') from None
    if isinstance(value, bool):
        raise ConfigError('"call_seconds" must be a number, a [min, max] pair or null')
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple) and len(value) == 2 and all(_is_number(v) for v in value):
        return (float(value[0]), float(value[1]))
    raise ConfigError('"call_seconds" must be a number, a [min, max] pair or null')


def parse_retry_after(value: str) -> tuple[float | None, RetryAfterFormat]:
    """The CLI's ``--retry-after``: ``S`` (seconds), ``date`` (1 s ahead) or ``date:S``."""
    kind, _, seconds = value.partition(":")
    if kind == "date":
        return (float(seconds) if seconds else 1.0), "date"
    try:
        return float(value), "seconds"
    except ValueError:
        raise ConfigError(f'"retry_after" must be S, date or date:S, got {value!r}') from None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(config: SandboxConfig) -> None:
    numbers = {
        "token_ttl_s": config.token_ttl_s,
        "insights_delay_s": config.insights_delay_s,
        "max_concurrent": config.max_concurrent,
    }
    for name, value in numbers.items():
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise ConfigError(f'"{name}" must be a number >= 0')
    sizes = {
        "request_log_limit": config.request_log_limit,
        "request_log_max_bytes": config.request_log_max_bytes,
        "max_body_bytes": config.max_body_bytes,
    }
    for name, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConfigError(f'"{name}" must be an integer >= 1')
    if config.control_token is not None and not isinstance(config.control_token, str):
        raise ConfigError('"control_token" must be a string or null')
    if not isinstance(config.seed, int) or isinstance(config.seed, bool):
        raise ConfigError('"seed" must be an integer')
    if config.retry_after_s is not None and not _is_number(config.retry_after_s):
        raise ConfigError('"retry_after_s" must be a number or null')
    if config.retry_after_format not in ("seconds", "date"):
        raise ConfigError('"retry_after_format" must be one of [seconds, date]')
    if not isinstance(config.nanp_only, bool):
        raise ConfigError('"nanp_only" must be a boolean')
    if config.public_host is not None and not isinstance(config.public_host, str):
        raise ConfigError('"public_host" must be a string or null')
    _check_call_seconds(config.call_seconds)
    _check_fault_rates(config.fault_rates)
    _check_fault_rate_kinds(config)
    _check_fault_rules(config.fault_rules)


def _check_call_seconds(value: CallSeconds) -> None:
    if isinstance(value, tuple):
        low, high = value
        if not 0 <= low <= high:
            raise ConfigError('"call_seconds" range must satisfy 0 <= min <= max')
    elif value is not None and (not _is_number(value) or value < 0):
        raise ConfigError('"call_seconds" must be a number >= 0, a [min, max] pair or null')


def _check_fault_rates(rates: object) -> None:
    if not isinstance(rates, dict):
        raise ConfigError('"fault_rates" must be an object of kind -> rate')
    for kind, rate in rates.items():
        if not _is_number(rate) or not 0 <= rate <= 1:
            raise ConfigError(f'"fault_rates.{kind}" must be a number between 0 and 1')
    if sum(rates.values()) > 1:
        raise ConfigError('"fault_rates" must add up to at most 1')


def _check_fault_rate_kinds(config: SandboxConfig) -> None:
    # Parsed here as the sandbox will arm them, so a kind it cannot arm is refused up front.
    try:
        RandomFaults.parse(config.seed, config.fault_rates)
    except FaultError as exc:
        raise ConfigError(f'"fault_rates": {exc}') from None


def _check_fault_rules(rules: object) -> None:
    try:
        parse_rules(rules, "fault_rules")
    except FaultError as exc:
        raise ConfigError(str(exc)) from None
