"""The Runtime's members are built once, by whichever thread asks first, and two threads asking
for members that need each other at the same moment never wait on each other forever."""

from __future__ import annotations

import http.server
import threading
from typing import Any, ClassVar

import pytest

from dialq import runtime as runtime_module
from dialq.config import Settings
from dialq.runtime import Runtime, built_once


class _Publisher:
    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        raise AssertionError("nothing is published here")


class TwoMembers(Runtime):
    """`outer` needs `inner`, like the schedule tick needs the call service."""

    def __init__(self) -> None:
        super().__init__(Settings(), _Publisher())
        self.outer_building = threading.Event()
        self.inner_asked = threading.Event()
        self.builds: list[str] = []

    @built_once
    def outer(self) -> tuple[str, str]:
        def make() -> tuple[str, str]:
            self.builds.append("outer")
            self.outer_building.set()
            self.inner_asked.wait(5)  # another thread is asking for `inner` now
            return "outer", self.inner

        return self._build("outer", make)  # type: ignore[return-value]

    @built_once
    def inner(self) -> str:
        self.inner_asked.set()

        def make() -> str:
            self.builds.append("inner")
            return "inner"

        return self._build("inner", make)  # type: ignore[return-value]


def test_two_threads_asking_for_members_that_need_each_other_both_get_them_once() -> None:
    runtime = TwoMembers()
    got: dict[str, Any] = {}
    # given a thread building `outer`, which will need `inner`
    first = threading.Thread(target=lambda: got.setdefault("outer", runtime.outer), daemon=True)
    first.start()
    assert runtime.outer_building.wait(5)
    # when another thread asks for `inner` at that moment
    second = threading.Thread(target=lambda: got.setdefault("inner", runtime.inner), daemon=True)
    second.start()
    first.join(10)
    second.join(10)
    # then both finish (on Python 3.11, functools.cached_property deadlocked here), each
    # member was built once, and later reads return the same objects
    assert not first.is_alive(), "the two threads deadlocked"
    assert not second.is_alive(), "the two threads deadlocked"
    assert got == {"outer": ("outer", "inner"), "inner": "inner"}
    assert sorted(runtime.builds) == ["inner", "outer"]
    assert runtime.outer is got["outer"]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the API serves
    peers: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        type(self).peers.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_connection_idle_past_the_reuse_limit_is_replaced_before_the_next_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clock = _Clock()
    monkeypatch.setattr(runtime_module, "time", clock)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        runtime = Runtime(Settings(), _Publisher())
        # given two requests in quick succession: one connection, kept alive
        runtime._session().get(url, timeout=5)
        clock.now += 0.5
        runtime._session().get(url, timeout=5)
        assert len(set(_Handler.peers)) == 1
        # when the thread's session then sat idle past the limit (a server may close it now)
        clock.now += runtime_module.KEEPALIVE_REUSE_S + 0.1
        runtime._session().get(url, timeout=5)
        # then the next request went out on a new connection
        assert len(set(_Handler.peers)) == 2
    finally:
        server.shutdown()
        server.server_close()
