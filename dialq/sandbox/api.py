"""Symbl's REST API as the sandbox serves it: tokens, endpoint:connect, events, conversations."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs

from dialq.sandbox import messages
from dialq.sandbox.content import meeting_for, organizer_for
from dialq.sandbox.conversations import (
    analytics_body,
    conversation_body,
    is_processed,
    spoken_messages,
)
from dialq.sandbox.core import Sandbox
from dialq.sandbox.exchange import Exchange, Reply, error, json_reply
from dialq.sandbox.state import Call
from dialq.sandbox.typecheck import Invalid
from dialq.sandbox.validation import validate_connect, validate_event, validate_token_request

INSIGHT_LISTS = {
    "topics": ("topics", "topics"),
    "questions": ("questions", "questions"),
    "action-items": ("actionItems", "action_items"),
    "follow-ups": ("followUps", "follow_ups"),
}
EVENT_PREFIX, CONVERSATION_PREFIX = "/v1/event/", "/v1/conversations/"


class SymblApi:
    """Handlers over one Sandbox, routed by hand.

    Handlers are plain functions: they cannot yield to the event loop, so each request's
    check-then-change (capacity, token, stop) is atomic. A hand-written dispatch instead of a
    Starlette Router keeps the per-request cost down for the benchmarks that drive the
    sandbox hard (bench/sandbox.py); the control API, which is not hot, uses Starlette.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def handle(self, method: str, path: str, query: bytes, exchange: Exchange) -> Reply:
        if path == "/v1/endpoint:connect":
            return self.connect(exchange) if method == "POST" else _not_allowed()
        if path == "/oauth2/token:generate":
            return self.generate_token(exchange) if method == "POST" else _not_allowed()
        if path.startswith(EVENT_PREFIX) and "/" not in path[len(EVENT_PREFIX) :]:
            connection_id = path[len(EVENT_PREFIX) :]
            return self.push_event(exchange, connection_id) if method == "POST" else _not_allowed()
        if path.startswith(CONVERSATION_PREFIX):
            parts = path[len(CONVERSATION_PREFIX) :].split("/")
            if method != "GET":
                return _not_allowed()
            if len(parts) == 1 and parts[0]:
                return self.conversation(exchange, parts[0])
            if len(parts) == 2 and parts[0] and parts[1]:
                return self.aspect(exchange, parts[0], parts[1], query)
        return error(404, "Not Found")

    def generate_token(self, exchange: Exchange) -> Reply:
        try:
            body = validate_token_request(exchange.body)
        except Invalid as exc:
            return error(400, exc.message)
        config = self.sandbox.config
        id_ok = hmac.compare_digest(body["appId"].encode(), config.app_id.encode())
        secret_ok = hmac.compare_digest(body["appSecret"].encode(), config.app_secret.encode())
        if not (id_ok and secret_ok):
            return error(401, messages.BAD_CREDENTIALS)
        issued = self.sandbox.tokens.issue(config.app_id, config.token_ttl_s)
        return json_reply({"accessToken": issued.access_token, "expiresIn": issued.expires_in})

    def connect(self, exchange: Exchange) -> Reply:
        if not self.sandbox.tokens.is_valid(exchange.token):
            return error(401, messages.TOKEN_INVALID)
        try:
            body = validate_connect(exchange.body, self.sandbox.config.nanp_only)
        except Invalid as exc:
            return error(400, exc.message)
        if body["operation"] == "stop":
            return self._stop(exchange, body["connectionId"])
        return self._start(exchange, body)

    def _start(self, exchange: Exchange, body: dict[str, Any]) -> Reply:
        config = self.sandbox.config
        endpoint = body["endpoint"]
        session = (body.get("data") or {}).get("session") or {}
        call = self.sandbox.book.start(
            config.max_concurrent,
            config.call_seconds,
            {key: endpoint.get(key) for key in ("type", "phoneNumber", "uri")},
            session.get("name"),
            exchange.entry["call_id"],
        )
        if call is None:
            return error(429, messages.TOO_MANY_CALLS, self.sandbox.capacity_headers())
        exchange.entry["connectionId"] = call.connection_id
        exchange.entry["conversationId"] = call.conversation_id
        return json_reply(self._connection(exchange, call), 201)

    def _stop(self, exchange: Exchange, connection_id: str) -> Reply:
        call = self.sandbox.book.end(connection_id, "stop")
        if call is None:
            return error(404, f"No live connection with connectionId {connection_id}.")
        exchange.entry["connectionId"] = call.connection_id
        exchange.entry["conversationId"] = call.conversation_id
        body = self._connection(exchange, call)
        body["summaryInfo"] = self._summary_info(exchange, call)
        return json_reply(body)

    def _base(self, exchange: Exchange) -> tuple[str, str]:
        """(http base, ws base): the configured public host, else the host the client used."""
        host = self.sandbox.config.public_host or exchange.host or "127.0.0.1"
        if host.startswith("https://"):
            return host.rstrip("/"), "wss://" + host[8:].rstrip("/")
        host = host.removeprefix("http://").rstrip("/")
        return f"http://{host}", f"ws://{host}"

    def _connection(self, exchange: Exchange, call: Call) -> dict[str, Any]:
        http_base, ws_base = self._base(exchange)
        return {
            "eventUrl": f"{http_base}/v1/event/{call.connection_id}",
            "resultWebSocketUrl": f"{ws_base}/events/{call.connection_id}",
            "connectionId": call.connection_id,
            "conversationId": call.conversation_id,
        }

    def _summary_info(self, exchange: Exchange, call: Call) -> list[dict[str, Any]]:
        organizer = organizer_for(call.conversation_id)
        user = {
            "id": organizer["id"],
            "userId": organizer["email"],
            "name": organizer["name"],
            "role": "organizer",
        }
        url = f"{self._base(exchange)[0]}/meeting/#/{call.conversation_id}"
        return [{"user": user, "url": url}]

    def push_event(self, exchange: Exchange, connection_id: str) -> Reply:
        if not self.sandbox.tokens.is_valid(exchange.token):
            return error(401, messages.TOKEN_INVALID)
        try:
            event = validate_event(exchange.body)
        except Invalid as exc:
            return error(400, exc.message)
        call = self.sandbox.book.live_call(connection_id)
        if call is None:
            return error(404, f"No live connection with connectionId {connection_id}.")
        call.events.append(event)
        exchange.entry["connectionId"] = call.connection_id
        return Reply(204)

    def conversation(self, exchange: Exchange, conversation_id: str) -> Reply:
        found = self._conversation_call(exchange, conversation_id)
        if isinstance(found, Reply):
            return found
        return json_reply(conversation_body(found, meeting_for(found.conversation_id)))

    def aspect(self, exchange: Exchange, conversation_id: str, aspect: str, query: bytes) -> Reply:
        found = self._conversation_call(exchange, conversation_id)
        if isinstance(found, Reply):
            return found
        call, now = found, self.sandbox.clock()
        meeting = meeting_for(call.conversation_id)
        ready = is_processed(call, now, self.sandbox.config.insights_delay_s)
        if aspect == "messages":
            flags = parse_qs(query.decode("latin-1"))
            verbose, sentiment = (
                flags.get("verbose") == ["true"],
                flags.get("sentiment") == ["true"],
            )
            said = spoken_messages(call, meeting, now, verbose=verbose, sentiment=sentiment)
            return json_reply({"messages": said})
        if aspect in INSIGHT_LISTS:
            key, attribute = INSIGHT_LISTS[aspect]
            return json_reply({key: list(getattr(meeting, attribute)) if ready else []})
        if aspect == "members":
            return json_reply({"members": [dict(m) for m in meeting.members]})
        if aspect == "summary":
            if not ready:
                return error(404, messages.SUMMARY_NOT_READY)
            return json_reply({"summary": list(meeting.summary)})
        if aspect == "analytics":
            return json_reply(analytics_body(call, meeting, now))
        if aspect in ("trackers-detected", "trackers"):
            return json_reply(list(meeting.trackers) if ready else [])
        return error(404, "Not Found")

    def _conversation_call(self, exchange: Exchange, conversation_id: str) -> Call | Reply:
        if not self.sandbox.tokens.is_valid(exchange.token):
            return error(401, messages.TOKEN_INVALID)
        call = self.sandbox.book.by_conversation(conversation_id)
        if call is None:
            return error(404, messages.CONVERSATION_NOT_FOUND)
        exchange.entry["conversationId"] = call.conversation_id
        return call


def _not_allowed() -> Reply:
    return error(405, "Method Not Allowed")
