"""dialq's Redis transport shares one redis-py client per pool, and a closed connection's
channel still refuses to build one (the Redis-restart fix in dialq.broker keeps holding)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from dialq import broker

# kombu ships no type information for these.
QUEUE = Queue("broker-test", Exchange("broker-test", type="direct"), routing_key="broker-test")  # type: ignore[no-untyped-call]


@pytest.fixture
def connection(redis_url: str) -> Iterator[Connection]:
    broker.install()
    with Connection(redis_url) as conn:  # type: ignore[no-untyped-call]
        yield conn


def test_publishes_on_a_channel_share_one_client_and_every_message_arrives(
    connection: Connection, redis_url: str
) -> None:
    # Given a producer on dialq's transport
    channel: Any = connection.default_channel
    assert isinstance(channel, broker.Channel)
    producer = connection.Producer(channel)  # type: ignore[no-untyped-call]
    # When it publishes many messages
    clients = []  # kept alive, so no two can share an id
    for number in range(50):
        producer.publish({"n": number}, exchange=QUEUE.exchange, routing_key="broker-test",
                         declare=[QUEUE])  # fmt: skip
        clients.append(channel._create_client())
    # Then one client served them all, and Redis holds every message
    assert len({id(client) for client in clients}) == 1
    assert redis.Redis.from_url(redis_url).llen("broker-test") == 50


def test_a_reconnected_channel_gets_a_client_on_its_new_pool(
    connection: Connection, redis_url: str
) -> None:
    # Given a channel whose client has been built
    channel: Any = connection.default_channel
    before = channel._create_client()
    # When kombu drops its pools (what it does after a connection error)
    channel._disconnect_pools()
    after = channel._create_client()
    # Then the next client is on the new pool, and it works
    assert after is not before
    assert after.connection_pool is channel.pool
    assert after.ping()


def test_a_channel_of_a_closed_connection_still_refuses_a_new_client(
    connection: Connection,
) -> None:
    # Given a channel whose connection Celery closed after a broker restart
    channel: Any = connection.default_channel
    channel._create_client()
    channel._disconnect_pools()
    connection.transport.client = None
    # When a late ack or requeue asks it for a client, Then it is a connection error
    with pytest.raises(broker.ChannelClosedError):
        channel._create_client()
