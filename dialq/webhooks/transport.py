"""The webhook POST: plain http.client, connected to the address the SSRF guard checked.

http.client rather than requests: it follows no redirects (a 302 to an internal address
would undo the guard) and reads no proxy settings from the environment, and pinning the
checked address takes a few lines instead of a custom adapter.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Protocol

from dialq.webhooks.guard import Target

# A receiver answers with a status; its body is read (so the connection ends cleanly) up to this.
MAX_RESPONSE_BYTES = 64 * 1024


class Transport(Protocol):
    def post(
        self, target: Target, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> int:
        """Send ``body`` to ``target`` and return the status; raise OSError or HTTPException."""


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a fixed address, with SNI and certificate checks for the URL's host name."""

    def __init__(
        self, target: Target, timeout_s: float, context: ssl.SSLContext | None = None
    ) -> None:
        self._context_for_host = context or ssl.create_default_context()
        self._server_name = target.host
        super().__init__(target.address, target.port, timeout=timeout_s)

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context_for_host.wrap_socket(raw, server_hostname=self._server_name)


class PinnedHTTP:
    """The real transport: one connection per POST (deliveries are rare and per call)."""

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self._tls_context = tls_context

    def post(
        self, target: Target, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> int:
        """`timeout_s` bounds the whole request, not each socket read: a receiver that drips a
        byte a second would otherwise hold a worker thread for minutes."""
        connection = self._connect(target, timeout_s)
        fired = threading.Event()
        deadline = threading.Timer(timeout_s, _abort, args=(connection, fired))
        deadline.daemon = True
        deadline.start()
        try:
            connection.request(
                "POST", target.path, body=body, headers={"Host": target.host_header, **headers}
            )
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
        except (OSError, http.client.HTTPException) as error:
            if fired.is_set():  # the socket was shut by the deadline, not by the receiver
                raise TimeoutError(f"timed out: no whole answer in {timeout_s}s") from error
            raise
        finally:
            deadline.cancel()
            connection.close()
        if fired.is_set():
            raise TimeoutError(f"timed out: no whole answer in {timeout_s}s")
        return response.status

    def _connect(self, target: Target, timeout_s: float) -> http.client.HTTPConnection:
        # Each socket operation gets the whole budget; the Timer in `post` ends the request.
        if target.scheme == "https":
            return _PinnedHTTPSConnection(target, timeout_s, self._tls_context)
        return http.client.HTTPConnection(target.address, target.port, timeout=timeout_s)


def _abort(connection: http.client.HTTPConnection, fired: threading.Event) -> None:
    """Past the deadline: shut the socket, so the read blocked on it returns at once."""
    fired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: the request is over anyway
            sock.shutdown(socket.SHUT_RDWR)
