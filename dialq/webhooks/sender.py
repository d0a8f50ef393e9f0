"""One signed POST of one event: guard the URL, sign the body, send, say what happened."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dialq import __version__
from dialq.webhooks.guard import IPNetwork, RefusedURL, Resolver, check_url, display_url
from dialq.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header
from dialq.webhooks.transport import Transport

USER_AGENT = f"dialq-webhooks/{__version__}"


@dataclass(frozen=True)
class Sent:
    """What one POST came to; ``url`` is safe to store (no query string)."""

    url: str
    started_at: datetime
    status: int | None
    latency_ms: float
    error: str | None
    refused: bool = False  # never worth retrying: the address may not be contacted

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def host(self) -> str:
        """For log lines, which carry the host and never the path or query."""
        return self.url.split("/")[2] if self.url.count("/") >= 2 else "?"


class WebhookSender:
    """Sends one event body to one URL; knows nothing of cursors or retries."""

    def __init__(
        self,
        secret: str,
        allow: Sequence[IPNetwork],
        transport: Transport,
        resolver: Resolver,
        timeout_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._secret = secret
        self._allow = allow
        self._transport = transport
        self._resolver = resolver
        self._timeout_s = timeout_s
        self._clock = clock

    def send(self, url: str, event_id: str, body: bytes) -> Sent:
        shown = display_url(url)
        started_at = self._clock()
        began = time.perf_counter()

        def sent(status: int | None, error: str | None, refused: bool = False) -> Sent:
            latency_ms = (time.perf_counter() - began) * 1000.0
            return Sent(shown, started_at, status, latency_ms, error, refused)

        try:
            target = check_url(url, self._allow, self._resolver)
        except RefusedURL as error:
            return sent(None, f"refused: {error}", refused=True)
        except OSError as error:
            return sent(None, f"resolve: {type(error).__name__}: {error}"[:300])
        try:
            status = self._transport.post(
                target, body, self._headers(event_id, body), self._timeout_s
            )
        except (OSError, http.client.HTTPException) as error:
            return sent(None, f"{type(error).__name__}: {error}"[:300])
        return sent(status, None if 200 <= status < 300 else f"http {status}")

    def _headers(self, event_id: str, body: bytes) -> dict[str, str]:
        # Signed at send time: a retry an hour later carries a fresh timestamp.
        timestamp = int(self._clock().timestamp())
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: signature_header(self._secret, body, timestamp),
        }
