"""A pooled PostgreSQL connection is pinged only when its socket says it may be dead, and one
the server closed while it rested is replaced before anyone uses it."""

from __future__ import annotations

import os
import resource
import time

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dialq.store import Database
from dialq.store.liveness import needs_ping


def _libpq(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(_libpq(url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _readable_within(connection: psycopg.Connection, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if needs_ping(connection, rested_s=0.0):
            return True
        time.sleep(0.02)
    return False


def test_a_resting_healthy_connection_needs_no_ping_and_a_terminated_one_does(pg_url: str) -> None:
    # given a connection resting idle, its server alive
    with psycopg.connect(_libpq(pg_url)) as connection:
        connection.execute("SELECT 1")
        connection.rollback()
        # then it needs no ping (no round trip to learn that)
        assert not needs_ping(connection, rested_s=1.0)
        # but one that rested past the idle limit is pinged anyway (a silently dropped flow)
        assert needs_ping(connection, rested_s=31.0)
        # when the server terminates it, then its socket tells at once
        _terminate(pg_url, connection.info.backend_pid)
        assert _readable_within(connection, 5.0)


def test_a_pooled_connection_the_server_closed_is_replaced_before_use(pg_url: str) -> None:
    # given a database whose one pooled connection rests between two sessions
    db = Database(pg_url)
    try:
        with db.sessions() as session:
            first = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # when PostgreSQL terminates that connection while it rests (a restart, a failover)
        _terminate(pg_url, first)
        time.sleep(0.2)
        # then the next session works, on a new connection, and raises nothing
        with db.sessions() as session:
            second = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
    finally:
        db.dispose()


def test_a_healthy_pool_reuses_its_connection_across_sessions(pg_url: str) -> None:
    # given a healthy pool, when sessions run one after another, then they share one
    # connection (the check kept it: nothing was replaced for want of a ping)
    db = Database(pg_url)
    try:
        pids = set()
        for _ in range(20):
            with db.sessions() as session:
                pids.add(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        assert len(pids) == 1
    finally:
        db.dispose()


def test_a_connection_on_a_descriptor_above_1023_is_checked_without_a_ping(pg_url: str) -> None:
    # given a process holding over a thousand descriptors (an API with many event streams),
    # so its database connection's socket is numbered above select()'s limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with psycopg.connect(_libpq(pg_url)) as connection:
            assert connection.fileno() > 1023
            connection.execute("SELECT 1")
            connection.rollback()
            # then a healthy resting connection still needs no ping, and a terminated one does
            assert not needs_ping(connection, rested_s=1.0)
            _terminate(pg_url, connection.info.backend_pid)
            assert _readable_within(connection, 5.0)
    finally:
        for fd in held:
            os.close(fd)
