"""One typed settings object, read once at each entry point from DIALQ_* and dialq.toml."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import limits
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_ACCOUNT = "default"
SYMBL_BASE_URL = "https://api.symbl.ai"


URL_MASK = "***"


def mask_url(url: str) -> str:
    """``url`` with its password and every query value replaced by ``***``, for reprs and logs.

    Brokers take a password in the user-info (``redis://:pw@host``) or the query
    (``?password=pw``); a callback URL may carry a token in its query.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return URL_MASK
    if password is None and not parts.query:
        return url  # nothing to hide; urlunsplit would also drop `sqlite:////abs`'s slash
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{URL_MASK}@{host}"
    query = "&".join(
        f"{name}={URL_MASK}" if sep else name
        for name, sep, _ in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _masked(args: Iterable[tuple[str | None, Any]]) -> Iterator[tuple[str | None, Any]]:
    # Settings sit in the Celery config, which `inspect conf` and Flower print by repr.
    for name, value in args:
        yield name, mask_url(value) if isinstance(value, str) and "://" in value else value


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dialq"


class Account(BaseModel):
    """One Symbl account: its credentials, where it lives, and how many live calls it allows."""

    app_id: str = ""
    app_secret: SecretStr = SecretStr("")
    base_url: str = SYMBL_BASE_URL
    max_concurrent_calls: int = Field(default=5, ge=1, le=10_000)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return _masked(super().__repr_args__())


class Settings(BaseSettings):
    """Everything dialq reads from its environment. Units are in the names."""

    model_config = SettingsConfigDict(
        env_prefix="DIALQ_",
        env_nested_delimiter="__",
        toml_file="dialq.toml",
        extra="ignore",
    )

    broker_url: str = "redis://127.0.0.1:6379/0"
    data_dir: Path = Field(default_factory=_default_data_dir)
    # Empty means a SQLite file in data_dir (see database_url_resolved).
    database_url: str = ""
    # Every process brings the schema up to date at start (serialised by a lock); turn off
    # where a deploy step runs `dialq db upgrade` instead.
    auto_migrate: bool = True

    # The default account, spelled flat because that is what most deployments need.
    symbl_base_url: str = SYMBL_BASE_URL
    symbl_app_id: str = ""
    symbl_app_secret: SecretStr = SecretStr("")
    max_concurrent_calls: int = Field(default=5, ge=1, le=10_000)
    # Further accounts by name, e.g. DIALQ_ACCOUNTS='{"sales": {"app_id": ..., ...}}'.
    accounts: dict[str, Account] = Field(default_factory=dict)

    # Symbl only dials US/Canada numbers today; widen when that changes.
    allowed_country_codes: list[int] = Field(default_factory=lambda: [1])
    # When not empty, the only domains Symbl's summary e-mails may go to: otherwise any
    # producer could have Symbl e-mail any address. Compared lower-case, exact (no subdomains).
    summary_email_domains: list[str] = Field(default_factory=list)

    http_connect_timeout_s: float = Field(default=5.0, gt=0)
    # A start request can take a while: Symbl dials in before it answers.
    http_read_timeout_s: float = Field(default=30.0, gt=0)
    # Tokens are renewed this long before they expire, so no request races the expiry.
    token_renew_margin_s: float = Field(default=300.0, ge=0)

    # Failures (5xx, errors before sending) retried this many times, then the call fails.
    failure_retry_budget: int = Field(default=5, ge=0, le=50)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0, le=60)
    # 429 re-dispatch: short, jittered, never longer than a broker countdown may be.
    capacity_retry_s: float = Field(default=5.0, gt=0, le=60)
    # Outage failures in a row (refused, 5xx, timeouts before sending) that open an account's
    # circuit: calls then wait for the API instead of spending their failure budget.
    api_circuit_threshold: int = Field(default=3, ge=1, le=100)
    api_circuit_cooldown_s: float = Field(default=5.0, gt=0, le=60)
    api_circuit_max_cooldown_s: float = Field(default=30.0, gt=0, le=60)
    # Requests each HTTP API key may make, as `limits` reads it ("120/minute", "10/second");
    # past it the API answers 429 with Retry-After. Counted in Redis, across API processes.
    api_rate_limit: str = "120/minute"
    # How long an API process trusts a key it found without asking the database again: a
    # revoked key is refused by every API process within this. 0 asks on every request.
    api_key_cache_s: float = Field(default=5.0, ge=0, le=300)
    # A call still not started this long after it became due fails with reason 'deadline'.
    dial_deadline_s: float = Field(default=3600.0, gt=0)
    default_max_duration_s: int = Field(default=3600, ge=10, le=4 * 3600)

    # What to do with a call whose start request's outcome could not be known. "redial" risks
    # a second call (Symbl has no way to look a call up), so it is never the default.
    unknown_policy: Literal["alert", "redial"] = "alert"
    unknown_redial_delay_s: float = Field(default=300.0, ge=0)

    # A permit's lease: the call's maximum duration plus this margin, renewed while it is
    # live, so a permit held by a dead worker comes back by itself.
    permit_lease_margin_s: float = Field(default=60.0, ge=0)

    # How often a live call is looked at (end seen, maximum duration, cancel asked).
    watch_interval_s: float = Field(default=5.0, gt=0, le=60)
    # How many live calls one look message looks at: its own and up to this many less one
    # more that are due. Fewer messages per look at scale; more keeps one slow Symbl answer
    # from delaying the page's other looks less. 1 is a message per look per call.
    watch_page: int = Field(default=8, ge=1, le=100)
    # A call still `dialing` this long after its claim lost its worker: the watchdog
    # hands it to the reconciler (`unknown`). Must exceed the HTTP timeouts with retries.
    dialing_stale_s: float = Field(default=120.0, gt=0)
    # A queued call whose dial message was due this long ago and never ran lost it (a worker
    # killed with it prefetched, a broker restart): the watchdog publishes it again. Shorter
    # means faster recovery and more harmless duplicate deliveries under a backlog.
    dispatch_grace_s: float = Field(default=60.0, gt=0)

    # Webhooks to the producer (README "Webhooks"). The HMAC key signing every body; while it
    # is empty nothing is sent (an unsigned event could be forged by anyone who finds the URL).
    webhook_secret: SecretStr = SecretStr("")
    # Receiver for calls that name no callback_url; empty: only calls that name one get events.
    default_callback_url: str = ""
    # CIDRs a callback may resolve into although private or loopback (SSRF guard), e.g.
    # ["127.0.0.0/8"] in tests or ["10.20.0.0/16"] for a receiver inside your own network.
    webhook_allow_networks: list[str] = Field(default_factory=list)
    # Per connect/read; a slow receiver only ever holds one thread of the webhooks queue.
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # An event not accepted this long after it happened is given up (recorded) and skipped.
    webhook_retry_window_s: float = Field(default=86400.0, gt=0)
    # Retries back off exponentially with jitter up to the max; waits over 60 s live in the
    # database (next_attempt_at) and the webhook sweeper picks them up (invariant 4).
    webhook_backoff_base_s: float = Field(default=5.0, gt=0)
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0)

    # Insights (docs: Conversation API): retried while not ready, for this long after the call
    # ended; then recorded as unavailable with the reason. Symbl takes seconds to minutes.
    insights_deadline_s: float = Field(default=900.0, gt=0)
    # Harvest retries back off exponentially with jitter; each wait is a broker countdown,
    # so it stays at or under 60 s (invariant 4).
    insights_backoff_base_s: float = Field(default=2.0, gt=0)
    insights_backoff_max_s: float = Field(default=30.0, gt=0, le=60)

    # Redis visibility timeout: longer than any countdown we ever set (cap 60 s) plus a dial.
    broker_visibility_timeout_s: int = Field(default=3600, ge=120)

    # Planned and recurring calls (docs/schedules.md). Declared schedules, upserted by name
    # whenever the file changes; beat ticks the dispatcher this often.
    schedules_file: Path | None = None
    schedule_tick_s: float = Field(default=1.0, gt=0, le=30)
    # An occurrence more late than this (an outage, a stopped beat) is skipped, not dialed.
    schedule_misfire_grace_s: int = Field(default=300, ge=0)
    # Due schedules one tick handles; the rest are handled by the next tick.
    schedule_tick_batch: int = Field(default=500, ge=1, le=100_000)

    # Operations (README "Operations"). JSON lines are what log shippers parse; readable lines
    # are for a terminal. Either way phone numbers are masked and secrets replaced (dialq.ops.logs).
    log_format: Literal["text", "json"] = "text"
    # Empty: the command's --loglevel (INFO for `dialq worker` and `dialq beat`).
    log_level: str = ""
    # Prometheus metrics from each worker process on this port (0: off). One port per host:
    # several workers on one host each need their own.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # The address the metrics listen on: this host only unless opened (compose: 0.0.0.0, the
    # port reached over the compose network and published nowhere).
    metrics_addr: str = Field(default="127.0.0.1", min_length=1)

    @field_validator("api_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError("must read like 120/minute or 10/second") from None
        return value

    @field_validator("summary_email_domains")
    @classmethod
    def _lower_case_domains(cls, value: list[str]) -> list[str]:
        return [domain.strip().lower().removeprefix("@") for domain in value if domain.strip()]

    @model_validator(mode="after")
    def _dialing_outlasts_its_requests(self) -> Settings:
        # Shorter, and the watchdog would call a dial `unknown` while its start request can
        # still be in flight (a token request, then the start, each up to its timeouts).
        longest_s = 2 * (self.http_connect_timeout_s + self.http_read_timeout_s)
        if self.dialing_stale_s < longest_s:
            raise ValueError(
                f"dialing_stale_s: must be at least twice the HTTP connect plus read timeouts "
                f"({longest_s:g} s), got {self.dialing_stale_s:g}"
            )
        return self

    @model_validator(mode="after")
    def _default_account_is_known(self) -> Settings:
        if DEFAULT_ACCOUNT not in self.accounts:
            self.accounts[DEFAULT_ACCOUNT] = Account(
                app_id=self.symbl_app_id,
                app_secret=self.symbl_app_secret,
                base_url=self.symbl_base_url,
                max_concurrent_calls=self.max_concurrent_calls,
            )
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return _masked(super().__repr_args__())

    @property
    def database_url_resolved(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'dialq.db'}"

    def account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise KeyError(f"unknown account {name!r}; known: {sorted(self.accounts)}") from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments beat the environment, which beats dialq.toml.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))
