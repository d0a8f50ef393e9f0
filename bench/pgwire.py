"""A TCP proxy in front of PostgreSQL that counts what clients send, by protocol message.

PostgreSQL's wire protocol tells statements and round trips apart without any server
extension: a simple query ('Q') is one statement and one round trip; the extended protocol
sends Parse/Bind/Describe/Execute ('E' each statement) and waits for the server only at Sync
('S'). So statements = Q + E and round trips = Q + S, counted on the client's stream after its
startup (the SSL or GSS request and the startup packet carry no type byte).

    with CountingProxy(("127.0.0.1", 5432)) as proxy:
        url = proxy.url_for("postgresql+psycopg://postgres@127.0.0.1:5432/test")
        ...
        counts = proxy.counts()  # {"statements": n, "round_trips": n, "connections": n}
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import Counter
from types import TracebackType

from sqlalchemy.engine import make_url

# Request codes of the untyped messages a client may send before its startup packet.
_PRE_STARTUP = {80877103, 80877104}  # SSLRequest, GSSENCRequest


class _ClientStream:
    """Splits one client's byte stream into protocol messages and counts their types."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.buffer = b""
        self.started = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return
                length, code = struct.unpack("!II", self.buffer[:8])
                if len(self.buffer) < length:
                    return
                self.buffer = self.buffer[length:]
                self.started = code not in _PRE_STARTUP
                continue
            if len(self.buffer) < 5:
                return
            kind = chr(self.buffer[0])
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            self.buffer = self.buffer[1 + length :]
            self.counts[kind] += 1


class CountingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]

    def __enter__(self) -> CountingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._listener.close()

    def url_for(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's, in plain text (TLS would hide
        the messages from the count)."""
        parsed = make_url(url)
        query = {**parsed.query, "sslmode": "disable", "gssencmode": "disable"}
        proxied = parsed.set(host="127.0.0.1", port=self.port, query=query)
        return proxied.render_as_string(hide_password=False)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def counts(self) -> dict[str, int]:
        with self._lock:
            c = Counter(self._counts)
        return {
            "statements": c["Q"] + c["E"],
            "round_trips": c["Q"] + c["S"],
            "connections": c["connections"],
        }

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _close(client)  # this client fails at once; the next may get through
                continue
            with self._lock:
                self._counts["connections"] += 1
            threading.Thread(target=self._client, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _client(self, client: socket.socket, upstream: socket.socket) -> None:
        local: Counter[str] = Counter()
        stream = _ClientStream(local)
        try:
            while data := client.recv(65536):
                stream.feed(data)
                with self._lock:
                    self._counts.update(local)
                local.clear()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source, sink)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
