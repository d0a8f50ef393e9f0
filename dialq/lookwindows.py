"""Calls whose first look falls in one window of time count themselves in, in Redis.

A call that connects gets its first look one watch interval later. A burst connects hundreds of
calls within moments; a message each was hundreds of messages to send and receive (a fifth of a
dial worker's CPU) only for pages of looks (`DIALQ_WATCH_PAGE`) to merge them a look later.
Instead each call joins the window its first look falls in, and one call in every page of a
window sends its message: that message's page takes the looks of the others.
"""

from __future__ import annotations

import math

import redis

from dialq import routing


class LookWindows:
    """How many calls joined each window, in one Redis shared by all workers."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def join(self, due_s: float, width_s: float, ttl_s: float) -> int:
        """Count a call into the window of `width_s` seconds its first look (due at `due_s`,
        epoch seconds) falls in: the count with it. The count outlives the window by far, then
        expires."""
        window_end_ms = round(math.ceil(due_s / width_s) * width_s * 1000)
        key = f"{routing.REDIS_PREFIX}looks:{window_end_ms}"
        pipe = self.redis.pipeline(transaction=False)  # one round trip
        pipe.incr(key)
        pipe.pexpire(key, max(1, round(ttl_s * 1000)))
        joined, _ = pipe.execute()
        return int(joined)
