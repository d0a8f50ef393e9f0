"""Messages in a worker's hands, given back within seconds when the worker dies.

dialq acks late: a message a worker took stays in kombu's `unacked` hash (with its delivery time
in `unacked_index`) until its task has run. When the worker dies without a goodbye (SIGKILL, a
lost machine, the OOM killer), kombu gives the message back only after the visibility timeout,
an hour by default because it must exceed every countdown. Until then a dial handed a permit
holds that permit for nothing, and the watchdog can only guess from the database, after a grace
long enough for a message that is merely queued behind a deep backlog (it must never republish
one of those: under load that is what doubled the queues).

So each worker says what it holds: the delivery tags it has taken and not yet acked or rejected,
written to Redis every `BEAT_S` under a key that expires after `TTL_S`. The watchdog gives back
exactly the messages that have been in `unacked` for `MIN_AGE_S` and that no live worker holds,
with kombu's own restore (the message goes back to the head of its queue, marked redelivered).
A merely queued message is never in `unacked`; a worker that is alive, however slow, holds its
messages. A worker frozen for longer than `TTL_S` has its messages given to another one: a
second delivery, which every dialq task takes harmlessly (the database claim decides).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from dialq import routing

log = logging.getLogger("dialq.hands")

BEAT_S = 2.0
TTL_S = 10.0
# Longer than a beat plus the TTL's slack: a live worker's newest messages are in its record.
MIN_AGE_S = 15.0
# kombu's names (dialq sets no key prefix on the broker).
UNACKED_INDEX = "unacked_index"
WORKERS_KEY = f"{routing.REDIS_PREFIX}hands:workers"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _hands_key(worker: str) -> str:
    return f"{routing.REDIS_PREFIX}hands:{worker}"


class Hands:
    """What this worker process holds, written to Redis while it holds anything."""

    def __init__(self, redis_client: Any, *, keep_s: float) -> None:
        self.redis = redis_client
        self.worker = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        # A tag whose ack never came (its request dropped on a consumer restart) is forgotten
        # after `keep_s`, the visibility timeout: by then kombu has given the message back.
        self.keep_s = keep_s
        self._held: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def took(self, tag: str) -> None:
        with self._lock:
            self._held[tag] = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="dialq-hands", daemon=True)
                self._thread.start()

    def let_go(self, tag: str) -> None:
        with self._lock:
            self._held.pop(tag, None)

    def held(self) -> list[str]:
        cutoff = time.monotonic() - self.keep_s
        with self._lock:
            for tag in [tag for tag, since in self._held.items() if since < cutoff]:
                del self._held[tag]
            return list(self._held)

    def write(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(WORKERS_KEY, self.worker)
        pipe.set(_hands_key(self.worker), json.dumps(self.held()), px=int(TTL_S * 1000))
        pipe.execute()

    def _beat(self) -> None:
        while True:
            try:
                self.write()
            except Exception as error:  # Redis away: the next beat tries again
                log.warning("could not record the messages in hand: %s", type(error).__name__)
            time.sleep(BEAT_S)


def held_by_live_workers(redis_client: Any) -> set[str]:
    """Every tag a live worker holds; the records of dead workers are dropped."""
    workers = [_text(w) for w in redis_client.smembers(WORKERS_KEY)]
    if not workers:
        return set()
    records = redis_client.mget([_hands_key(w) for w in workers])
    dead = [w for w, record in zip(workers, records, strict=True) if record is None]
    if dead:
        redis_client.srem(WORKERS_KEY, *dead)
    return {tag for record in records if record is not None for tag in json.loads(record)}


def orphans(redis_client: Any, *, now_s: float, min_age_s: float = MIN_AGE_S) -> list[str]:
    """Delivery tags in `unacked` for `min_age_s` that no live worker holds.

    Read in this order, a tag acked meanwhile may be listed: kombu's restore finds nothing
    to give back for it. A tag delivered after the first read is too young to be listed."""
    old = redis_client.zrangebyscore(UNACKED_INDEX, "-inf", now_s - min_age_s)
    if not old:
        return []
    tags = [_text(t) for t in old]
    held = held_by_live_workers(redis_client)
    return [tag for tag in tags if tag not in held]


def give_back_orphans(app: Any, redis_client: Any, *, min_age_s: float = MIN_AGE_S) -> int:
    """Put the messages of dead workers back at the head of their queues; returns how many."""
    lost = orphans(redis_client, now_s=time.time(), min_age_s=min_age_s)
    if not lost:
        return 0
    with app.connection_for_write() as connection:
        qos = connection.default_channel.qos
        for tag in lost:
            # Atomic (WATCH on `unacked`): a message acked meanwhile is not given back.
            qos.restore_by_tag(tag)
    log.warning("gave back %d message(s) held by a worker that died", len(lost))
    return len(lost)
