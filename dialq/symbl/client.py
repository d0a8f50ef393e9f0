"""The Symbl endpoints dialq uses: start and stop a call, read a conversation.

Retries here are fast and only for requests that never reached the API (style.md habit 5);
everything else goes back to the caller, whose task layer re-dispatches slowly.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import requests
import tenacity

from dialq.config import Account
from dialq.symbl.auth import TokenProvider
from dialq.symbl.errors import AuthenticationError, NotSentError, UnexpectedResponseError
from dialq.symbl.transport import (
    AttemptHook,
    AttemptRecord,
    HttpRequest,
    Operation,
    describe,
    exchange,
    json_object,
    required_str,
)

__all__ = ["CONVERSATION_PARTS", "AttemptRecord", "StartResult", "StopResult", "SymblClient"]

log = logging.getLogger("dialq.symbl")
T = TypeVar("T")

CONVERSATION_PARTS = frozenset(
    {"", "messages", "topics", "questions", "action-items", "follow-ups", "members", "summary"}
    | {"analytics"}
)
# Fast retries: long enough for a restarting proxy, short enough to hold no worker for long.
NOT_SENT_WAIT_FIRST_S = 0.2
NOT_SENT_WAIT_MAX_S = 1.0


@dataclass(frozen=True)
class StartResult:
    """What a successful start returns (docs/symbl-api.md §3.4)."""

    connection_id: str
    conversation_id: str
    event_url: str
    result_websocket_url: str


@dataclass(frozen=True)
class StopResult:
    """What a successful stop returns (docs/symbl-api.md §3.5)."""

    connection_id: str
    conversation_id: str | None
    summary_info: list[dict[str, Any]]


class SymblClient:
    """One account's Symbl API, reporting every HTTP attempt through ``on_attempt``."""

    def __init__(
        self,
        account: Account,
        tokens: TokenProvider,
        session: requests.Session,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        not_sent_retries: int = 2,
        on_attempt: Callable[[AttemptRecord], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base_url = account.base_url.rstrip("/")
        self._tokens = tokens
        self._session = session
        self._timeout_s = (connect_timeout_s, read_timeout_s)
        self._not_sent_retries = not_sent_retries
        self._on_attempt: AttemptHook | None = on_attempt
        self._sleep = sleep

    def start(self, body: Mapping[str, Any], *, call_id: str) -> StartResult:
        """Start a call and return its ids and URLs (docs/symbl-api.md §3.4).

        OutcomeUnknownError and UnexpectedResponseError mean the call may have started anyway:
        the caller must never send it again on its own (docs/architecture.md, invariant 3).
        """
        headers = {"X-Dialq-Call-Id": call_id}  # lets the sandbox count starts per call
        return self._call("start", "POST", "/v1/endpoint:connect", body, _parse_start, headers)

    def stop(self, connection_id: str) -> StopResult:
        """Stop the call; NotFoundError when the connection is unknown or already ended."""
        body = {"operation": "stop", "connectionId": connection_id}
        return self._call("stop", "POST", "/v1/endpoint:connect", body, _parse_stop)

    def conversation(self, conversation_id: str, part: str = "") -> Any:
        """The conversation object, or one part of it (messages, topics, summary, ...)."""
        if part not in CONVERSATION_PARTS:
            raise ValueError(f"unknown conversation part {part!r}")
        path = f"/v1/conversations/{quote(conversation_id, safe='')}"
        if part:
            path = f"{path}/{part}"
        return self._call("conversation", "GET", path, None, _parse_json)

    def _call(
        self,
        operation: Operation,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        parse: Callable[[int, str], T],
        headers: Mapping[str, str] | None = None,
    ) -> T:
        json_body = None if body is None else dict(body)
        renewed = False

        def send_with(token: str) -> T:
            sent = {**(headers or {}), "x-api-key": token}
            url = self._base_url + path
            request = HttpRequest(operation, method, url, sent, json_body, secrets=(token,))
            return self._send(request, parse)

        def attempt() -> T:
            nonlocal renewed
            token = self._tokens.token(on_attempt=self._on_attempt)
            try:
                return send_with(token)
            except AuthenticationError:
                if renewed:
                    raise
                # A 401 never starts a call, so one more send with a fresh token is safe.
                renewed = True
                return send_with(self._tokens.renew(token, on_attempt=self._on_attempt))

        return self._retrying(operation)(attempt)

    def _send(self, request: HttpRequest, parse: Callable[[int, str], T]) -> T:
        return exchange(
            self._session, request, parse, timeout_s=self._timeout_s, on_attempt=self._on_attempt
        )

    def _retrying(self, operation: str) -> tenacity.Retrying:
        total = self._not_sent_retries + 1

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s request not sent (attempt %d of %d): %s; retrying in %.1fs",
                operation,
                state.attempt_number,
                total,
                describe(error) if isinstance(error, Exception) else "no error",
                state.upcoming_sleep,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(NotSentError),
            stop=tenacity.stop_after_attempt(total),
            wait=tenacity.wait_exponential(
                multiplier=NOT_SENT_WAIT_FIRST_S,
                min=NOT_SENT_WAIT_FIRST_S,
                max=NOT_SENT_WAIT_MAX_S,
            ),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )


def _parse_start(status: int, text: str) -> StartResult:
    body = json_object(status, text)
    connection_id = required_str(body, "connectionId", status)
    return StartResult(
        connection_id=connection_id,
        conversation_id=required_str(body, "conversationId", status),
        event_url=required_str(body, "eventUrl", status),
        result_websocket_url=required_str(body, "resultWebSocketUrl", status),
    )


def _parse_stop(status: int, text: str) -> StopResult:
    body = json_object(status, text)
    connection_id = required_str(body, "connectionId", status)
    conversation_id = body.get("conversationId")
    if conversation_id is not None and not isinstance(conversation_id, str):
        raise UnexpectedResponseError("conversationId is not a string", status=status)
    summary_info = body.get("summaryInfo", [])
    if not isinstance(summary_info, list) or not all(isinstance(s, dict) for s in summary_info):
        raise UnexpectedResponseError("summaryInfo is not a list of objects", status=status)
    return StopResult(connection_id, conversation_id, summary_info)


def _parse_json(status: int, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise UnexpectedResponseError(
            f"body is not JSON ({len(text)} characters)", status=status
        ) from None
