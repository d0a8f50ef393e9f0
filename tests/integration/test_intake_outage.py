"""Intake during a database outage: a by-name request is retried until it is recorded, once;
the Python API raises a clear error and publishes nothing.

PostgreSQL is real; dialq reaches it through a TCP proxy in this process that the test cuts
(open connections reset, new ones refused) and restores. The worker is a real process.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from celery import Celery
from sqlalchemy import text

from dialq import routing
from dialq.api import enqueue_call, producer_runtime
from dialq.sandbox import SandboxConfig, start_sandbox
from dialq.store import Database, DatabaseUnavailable, calls_repo
from dialq.store.tables import Call
from tests.servers import PG_ADMIN_URL
from tests.stack import APP_ID, APP_SECRET, Stack, running_stack, stack_env

NUMBER = "+14155550142"


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL until cut; cut resets every connection and
    closes the listener (connections are refused), restore listens on the same port again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> CuttableProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)  # shutdown first: a bare close does not wake a blocked accept()
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    restore = start

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _close(sock)
                with self._lock:
                    self._open.discard(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def proxy() -> Iterator[CuttableProxy]:
    parts = urlsplit(PG_ADMIN_URL)
    running = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
    yield running
    running.cut()


@pytest.fixture
def outage_stack(
    pg_url: str, redis_url: str, proxy: CuttableProxy, tmp_path: Path
) -> Iterator[Stack]:
    """The stack on PostgreSQL through the proxy, empty tables, no worker yet."""
    db = Database(pg_url)
    db.upgrade()
    with db.transaction() as session:
        for table in ("attempts", "events", "calls"):
            session.execute(text(f"DELETE FROM {table}"))
    db.dispose()
    proxied = pg_url.replace(
        f"@{urlsplit(pg_url).netloc.split('@')[-1]}", f"@127.0.0.1:{proxy.port}"
    )
    sandbox = start_sandbox(
        SandboxConfig(app_id=APP_ID, app_secret=APP_SECRET, max_concurrent=50), port=0
    )
    try:
        env = stack_env(redis_url, proxied, sandbox.url, tmp_path)
        with running_stack(env, sandbox, tmp_path) as stack:
            yield stack
    finally:
        sandbox.stop()


def direct_calls(pg_url: str) -> list[Call]:
    """The calls table, read past the proxy."""
    db = Database(pg_url)
    try:
        with db.sessions() as session:
            return calls_repo.list_calls(session, limit=100)
    finally:
        db.dispose()


def dial_messages(stack: Stack) -> int:
    return int(redis.Redis.from_url(stack.env["DIALQ_BROKER_URL"]).llen(routing.QUEUE_DIAL))


@pytest.mark.timeout(120)
def test_a_by_name_request_sent_while_the_database_is_down_is_recorded_once_and_dialed_once(
    outage_stack: Stack, proxy: CuttableProxy, pg_url: str
) -> None:
    stack = outage_stack
    # given a worker, and the database unreachable (connections reset, new ones refused)
    stack.start_worker()
    proxy.cut()
    # when a Celery client sends a by-name request, and the outage lasts a few seconds
    client = Celery(broker=stack.env["DIALQ_BROKER_URL"])
    sent = client.send_task(
        routing.PLACE_CALL, kwargs={"request": {"phone_number": NUMBER}}, queue=routing.QUEUE_DIAL
    )
    deadline = time.monotonic() + 30
    while stack.worker_logs().count("DatabaseUnavailable") < 3:
        assert time.monotonic() < deadline, stack.worker_logs()[-3000:]
        time.sleep(0.2)
    assert direct_calls(pg_url) == []
    proxy.restore()
    # then, once it is back, the request is recorded as exactly one call, dialed exactly once
    deadline = time.monotonic() + 30
    while not (rows := direct_calls(pg_url)):
        assert time.monotonic() < deadline, stack.worker_logs()[-3000:]
        time.sleep(0.2)
    stack.wait_for(rows[0].id, {"connected"})
    time.sleep(2.0)  # any second delivery or retry would have landed by now
    rows = direct_calls(pg_url)
    assert [(row.idempotency_key, row.phone_number) for row in rows] == [
        (f"celery-task:{sent.id}", NUMBER)
    ]
    assert [s["status"] for s in stack.starts_for(rows[0].id)] == [201]
    assert "Retry in" in stack.worker_logs()


@pytest.mark.timeout(60)
def test_the_python_api_raises_a_clear_error_and_publishes_nothing_while_the_database_is_down(
    outage_stack: Stack, proxy: CuttableProxy, pg_url: str
) -> None:
    stack = outage_stack
    # given a producer that has used the database, which then becomes unreachable
    settings = stack.settings
    assert producer_runtime(settings).service is not None
    proxy.cut()
    # when it enqueues a call, with a key and without
    for request in ({"phone_number": NUMBER}, {"phone_number": NUMBER, "idempotency_key": "k1"}):
        with pytest.raises(DatabaseUnavailable) as down:
            enqueue_call(request, settings=settings)
        # then the error says what happened and what to do, and no dial message was sent
        assert "database unavailable" in str(down.value)
        assert "not published" in str(down.value)
        assert "idempotency_key" in str(down.value)
    assert dial_messages(stack) == 0
    # and once the database is back, nothing had been recorded
    proxy.restore()
    assert direct_calls(pg_url) == []
