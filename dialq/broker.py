"""kombu's Redis transport, made to survive a Redis restart with messages in hand.

When the broker connection drops, Celery closes it and kombu detaches the transport from its
connection (`transport.client = None`). A channel of that connection is still referenced by
what was in hand: the unacked messages kombu requeues on close, and every task still running
acks its message on it when it finishes. Each of those builds a Redis client from
`transport.client` and raises AttributeError ("'NoneType' object has no attribute
'hostname'"), which neither kombu nor Celery expects: the worker exits ("Unrecoverable
error") on every Redis restart while anything is in hand, that is, always (each countdown
watch is a message in hand).

Here such a channel raises a connection error instead, which both already handle: the ack or
requeue is dropped and logged, and Redis gives the message back after the visibility timeout
(a delivery dialq's tasks take twice are harmless: the database claim decides), or, for a
Redis that lost it, the watchdog republishes what the database says is due.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES, _transport_cache
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

TRANSPORT = "dialq.broker:Transport"
SCHEMES = ("redis", "rediss")


class ChannelClosedError(RedisConnectionError):
    """Raised by a channel whose connection is gone (a connection error for kombu)."""


class Channel(kombu_redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        """One client per pool: kombu builds a new one for every publish, ack and batch of
        events (about 70 us each, a fifth of a worker's publish). A redis-py client is only a
        handle on its pool, safe to share between threads; a new pool (after a reconnect)
        gets a new client."""
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        pool = self.pool  # as kombu's own: raises ChannelClosedError once the connection is gone
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise ChannelClosedError("the broker connection of this channel is closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Make `redis://` and `rediss://` URLs use this transport in this process.

    Registered under kombu's own scheme names rather than set as Celery's `broker_transport`:
    that would make the broker URL read `dialq.broker:Transport://...` wherever it is shown,
    and Flower, which picks its broker inspector by scheme, could no longer show queues.
    """
    for scheme in SCHEMES:
        TRANSPORT_ALIASES[scheme] = TRANSPORT
        _transport_cache.pop(scheme, None)  # kombu caches a class per name once resolved
