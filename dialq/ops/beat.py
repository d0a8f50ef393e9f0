"""Celery beat's scheduler, leaving a heartbeat in Redis at each tick.

A stopped beat is silent: no schedule is placed, no sweep runs, and nothing errs. The heartbeat
lets `dialq doctor` (and the dashboard) tell a running beat from a dead one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery.beat import PersistentScheduler

from dialq import routing

log = logging.getLogger("dialq.beat")

LAST_TICK_KEY = f"{routing.REDIS_PREFIX}beat:last_tick"
HEARTBEAT_EVERY_S = 1.0
# Beat ticks at least every 5 s (the sweeps); three missed sweeps and it is not running.
STALE_AFTER_S = 15.0
KEEP_S = 7 * 24 * 3600


class HeartbeatScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's file-backed scheduler that also records when it last ticked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_heartbeat = 0.0
        self._client: redis.Redis | None = None
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        now = time.time()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY_S:
            self._last_heartbeat = now
            self._heartbeat(now)
        return min(interval, HEARTBEAT_EVERY_S)

    def _heartbeat(self, now: float) -> None:
        try:
            if self._client is None:
                url = self.app.conf.dialq_settings.broker_url
                self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            self._client.set(LAST_TICK_KEY, f"{now:.3f}", ex=KEEP_S)
        except redis.RedisError as error:
            # The broker is down too; beat's own reconnects say so. Try again next tick.
            log.warning("beat heartbeat not recorded: %s", type(error).__name__)


def last_tick_age_s(client: redis.Redis, now: float | None = None) -> float | None:
    """Seconds since beat last ticked, None when it never has (or not for a week)."""
    raw = client.get(LAST_TICK_KEY)
    if raw is None:
        return None
    return max(0.0, (now if now is not None else time.time()) - float(raw))


def healthy() -> bool:
    """For a container healthcheck: beat ticked within STALE_AFTER_S (settings from the env)."""
    from dialq.config import Settings

    client = redis.Redis.from_url(Settings().broker_url, socket_timeout=3)
    try:
        age_s = last_tick_age_s(client)
    except redis.RedisError:
        return False
    finally:
        client.close()
    return age_s is not None and age_s <= STALE_AFTER_S
