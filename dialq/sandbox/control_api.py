"""The control API under ``/_sandbox/``: reset, configure, script faults, inspect.

No auth unless the sandbox has a ``control_token`` (checked by the outer app before routing).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from dialq.sandbox.config import ConfigError
from dialq.sandbox.core import Sandbox
from dialq.sandbox.faults import FaultError, RandomFaults

PREFIX = "/_sandbox"


class ControlApi:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def router(self) -> Router:
        def route(path: str, endpoint: Any, methods: list[str]) -> Route:
            return Route(PREFIX + path, endpoint, methods=methods)

        return Router(
            routes=[
                route("/reset", self.reset, ["POST"]),
                route("/config", self.config, ["GET", "POST"]),
                route("/faults", self.faults, ["GET", "POST", "DELETE"]),
                route("/faults/random", self.random_faults, ["POST"]),
                route("/requests", self.requests, ["GET"]),
                route("/calls", self.calls, ["GET"]),
                route("/live", self.live, ["GET"]),
                route("/calls/{connection_id}/end", self.end_call, ["POST"]),
            ]
        )

    async def reset(self, request: Request) -> Response:
        self.sandbox.reset()
        return JSONResponse({"reset": True})

    async def config(self, request: Request) -> Response:
        if request.method == "POST":
            changes = await _json_object(request)
            if isinstance(changes, Response):
                return changes
            try:
                self.sandbox.configure(changes)
            except (ConfigError, TypeError) as exc:  # nothing was changed
                return error(400, str(exc))
        return JSONResponse(self.sandbox.config.public_view())

    async def faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.sandbox.faults.clear()
        elif request.method == "POST":
            body = await _json_object(request, allow_list=True)
            if isinstance(body, Response):
                return body
            rules = body.get("rules") if isinstance(body, dict) else body
            try:
                self.sandbox.faults.add(rules)
            except FaultError as exc:
                return error(400, str(exc))
        return JSONResponse(self.sandbox.faults.view())

    async def random_faults(self, request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        seed, rates = body.get("seed", 0), body.get("rates")
        if not isinstance(seed, int) or not isinstance(rates, dict):
            return error(400, '"seed" must be an integer and "rates" an object of kind -> rate')
        try:
            self.sandbox.faults.random = RandomFaults.parse(
                seed,
                rates,
                body.get("match"),
                hang_seconds=body.get("hang_seconds"),
                slow_seconds=body.get("slow_seconds", 1.0),
            )
        except FaultError as exc:
            return error(400, str(exc))
        return JSONResponse(self.sandbox.faults.view())

    async def requests(self, request: Request) -> Response:
        since = request.query_params.get("since", "0")
        if not since.isdigit():
            return error(400, '"since" must be a sequence number')
        return JSONResponse({"requests": self.sandbox.log.entries(int(since))})

    async def calls(self, request: Request) -> Response:
        calls = self.sandbox.book.all_calls()
        if request.query_params.get("live") == "true":
            calls = [call for call in calls if call.live]
        return JSONResponse({"calls": [call.view() for call in calls]})

    async def live(self, request: Request) -> Response:
        count = self.sandbox.book.live_count()
        return JSONResponse({"live": count, "max_concurrent": self.sandbox.config.max_concurrent})

    async def end_call(self, request: Request) -> Response:
        connection_id = request.path_params["connection_id"]
        call = self.sandbox.book.end(connection_id, "hangup")
        if call is None:
            return error(404, f"No live connection with connectionId {connection_id}.")
        return JSONResponse(call.view())


def error(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status)


async def _json_object(request: Request, allow_list: bool = False) -> Any:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return error(400, "the body must be JSON")
    if not isinstance(body, dict) and not (allow_list and isinstance(body, list)):
        return error(400, "the body must be a JSON object")
    return body
