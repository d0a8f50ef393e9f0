"""Fixtures shared by every test: private Redis, PostgreSQL and SQLite databases, the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dialq.ops.local_redis import PrivateRedis, RedisNotFound
from tests.servers import missing_server, private_pg_schema


@pytest.fixture(scope="session")
def redis_server() -> Iterator[PrivateRedis]:
    """A redis-server of our own on a free port, for the whole session."""
    try:
        server = PrivateRedis().start()
    except RedisNotFound:
        missing_server("redis-server")
        raise
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: PrivateRedis) -> Iterator[str]:
    """The private Redis, emptied before and after each test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    client.flushall()
    client.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for this test run (127.0.0.1:5432, trust auth)."""
    with private_pg_schema() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dialq.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every store test runs on both databases."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


# The sandbox fixtures live beside the sandbox's own helpers.
pytest_plugins = ["tests.fixtures_sandbox"]
