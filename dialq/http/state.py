"""What the API process holds: its settings, the process Runtime, a broker probe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import redis
from fastapi import Request

from dialq.api import producer_runtime
from dialq.calls.service import CallService
from dialq.config import Settings
from dialq.http.principal import KnownKeys
from dialq.http.ratelimit import RateLimit
from dialq.runtime import Runtime
from dialq.store import Database
from dialq.store.errors import translated

# A probe answers fast or not at all: a request waits for it before writing anything.
PROBE_TIMEOUT_S: Final = 2.0


@dataclass
class ApiState:
    settings: Settings
    runtime: Runtime
    # Its own client with short timeouts: the runtime's waits as long as the OS does.
    broker: redis.Redis
    rate_limit: RateLimit
    known_keys: KnownKeys

    @classmethod
    def build(cls, settings: Settings) -> ApiState:
        broker = redis.Redis.from_url(
            settings.broker_url,
            socket_connect_timeout=PROBE_TIMEOUT_S,
            socket_timeout=PROBE_TIMEOUT_S,
        )
        rate_limit = RateLimit.build(settings, PROBE_TIMEOUT_S)
        known_keys = KnownKeys(settings.api_key_cache_s)
        return cls(settings, producer_runtime(settings), broker, rate_limit, known_keys)

    def service(self) -> CallService:
        """The runtime's call service; built on first use, which may fail as `database` may."""
        with translated():
            return self.runtime.service

    def database(self) -> Database:
        """The runtime's database; its first use migrates it (DIALQ_AUTO_MIGRATE), which may
        fail like any other use: as the store's DatabaseUnavailable."""
        with translated():
            return self.runtime.db

    def broker_answers(self) -> bool:
        try:
            return bool(self.broker.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        except redis.RedisError:  # it answers, but refuses (a password, a full disk)
            return False


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.dialq
    return state
