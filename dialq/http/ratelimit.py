"""The per-key rate limit: a moving window counted in Redis, so every API process shares it."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Final

import limits
import redis
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from dialq.config import Settings
from dialq.routing import REDIS_PREFIX

log = logging.getLogger("dialq.http")

# Beside dialq's other Redis keys, apart from them: one sorted set per key and window.
KEY_PREFIX: Final = f"{REDIS_PREFIX}api-rate"


@dataclass
class RateLimit:
    """How many requests a key may make per window, and the window's counter."""

    item: limits.RateLimitItem
    limiter: MovingWindowRateLimiter

    @classmethod
    def build(cls, settings: Settings, socket_timeout_s: float) -> RateLimit:
        storage = RedisStorage(
            settings.broker_url,
            key_prefix=KEY_PREFIX,
            socket_connect_timeout=socket_timeout_s,
            socket_timeout=socket_timeout_s,
        )
        return cls(limits.parse(settings.api_rate_limit), MovingWindowRateLimiter(storage))

    def retry_after_s(self, key_id: str) -> int | None:
        """Count a request of `key_id`: None when it may go on, else the whole seconds until
        the window frees a place. Open when Redis cannot count: the request meets the same
        outage at its own next step, and a limiter must not be the reason an API is down."""
        return self.count(key_id).retry_after_s

    def count(self, key_id: str) -> Count:
        """Count a request of `key_id` (see `retry_after_s`), and say whether Redis answered:
        it is the broker's, so a count is also a probe of the broker."""
        try:
            if self.limiter.hit(self.item, key_id):
                return Count(retry_after_s=None, redis_answered=True)
            reset_at = self.limiter.get_window_stats(self.item, key_id).reset_time
        except redis.RedisError:
            log.warning("rate limit not counted: Redis unavailable")
            return Count(retry_after_s=None, redis_answered=False)
        return Count(max(1, math.ceil(reset_at - time.time())), redis_answered=True)


@dataclass(frozen=True)
class Count:
    """A request counted: its wait if over the limit, and whether Redis answered the count."""

    retry_after_s: int | None
    redis_answered: bool
