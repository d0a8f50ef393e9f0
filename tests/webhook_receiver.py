"""A real HTTP receiver for webhook tests: records every request, answers as scripted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a hanging handler must not hold up the test's teardown
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        receiver = self.server.receiver
        action = receiver._record(Received(self.path, dict(self.headers), body, time.monotonic()))
        if action[0] == "hang":
            receiver._released.wait(action[1])
        try:
            self.send_response(int(action[1]) if action[0] == "status" else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:
            pass  # the client gave up waiting (a hang): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver:
    """Answers request number n with its script entry, 200 once the script runs out.

    Script entries: ("status", 500) or ("hang", seconds). ``hang_all`` hangs every request.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[tuple[str, float]] = []
        self.hang_all_s: float | None = None
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _record(self, request: Received) -> tuple[str, float]:
        with self._lock:
            self.requests.append(request)
            if self.hang_all_s is not None:
                return ("hang", self.hang_all_s)
            n = len(self.requests)
            return self.script[n - 1] if n <= len(self.script) else ("status", 200)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.received()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {len(self.received())} requests, not {count}")
            time.sleep(0.05)
        return self.received()

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
