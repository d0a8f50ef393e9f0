"""The benchmark's wire counter counts PostgreSQL statements and round trips as the server
sees them: the figure bench/dispatch.py prints per connected call rests on it."""

from __future__ import annotations

import time

import psycopg
from sqlalchemy.engine import make_url

from bench.pgwire import CountingProxy


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _settled(proxy: CountingProxy, want: dict[str, int]) -> dict[str, int]:
    deadline = time.monotonic() + 5
    while (counts := proxy.counts()) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return counts


def test_the_proxy_counts_each_statement_and_each_wait_for_the_server(pg_url: str) -> None:
    url = make_url(pg_url)
    proxy = CountingProxy((url.host or "127.0.0.1", url.port or 5432))
    with proxy, psycopg.connect(_libpq(proxy.url_for(pg_url))) as connection:
        proxy.reset()
        # when a transaction runs two parametrised statements and commits
        connection.execute("SELECT %s::int", (1,))
        connection.execute("SELECT %s::int", (2,))
        connection.commit()
        # then the server saw BEGIN, two statements and COMMIT, each its own round trip
        want = {"statements": 4, "round_trips": 4, "connections": 0}
        assert _settled(proxy, want) == want
        # and a pipeline sends three statements in one round trip
        proxy.reset()
        with connection.pipeline():
            for n in range(3):
                connection.execute("SELECT %s::int", (n,))
        connection.commit()
        counts = _settled(proxy, {"statements": 5, "round_trips": 3, "connections": 0})
        assert counts["statements"] == 5  # BEGIN, three, COMMIT
        assert counts["round_trips"] < counts["statements"]
