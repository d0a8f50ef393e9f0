"""A slow webhook receiver cannot hold a worker thread past the delivery timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from dialq.webhooks.guard import Target
from dialq.webhooks.transport import PinnedHTTP


@pytest.fixture
def dripping_receiver() -> Iterator[int]:
    """Answers every request with a status line, then one header byte every 0.3 s, forever."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.is_set():
                    conn.sendall(b"X")
                    time.sleep(0.3)
            except OSError:
                return  # the client gave up: that is what the test wants

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


def test_a_receiver_dripping_bytes_is_cut_off_at_the_timeout_for_the_whole_request(
    dripping_receiver: int,
) -> None:
    # given a receiver that sends a byte every 0.3 s (each read well inside a 1 s timeout)
    target = Target("http", "127.0.0.1", dripping_receiver, "/hook", "127.0.0.1")
    began = time.monotonic()
    # when a webhook is posted to it with a 1 s timeout
    with pytest.raises(TimeoutError, match="timed out"):
        PinnedHTTP().post(target, b"{}", {"Content-Type": "application/json"}, timeout_s=1.0)
    # then the POST gives up after about a second, not after the receiver is done
    assert time.monotonic() - began < 3.0
