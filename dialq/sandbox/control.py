"""A Python client for the control API, so a sandbox in another process is driven the same way."""

from __future__ import annotations

from typing import Any

import requests


class SandboxControlError(RuntimeError):
    """Raised when the control API rejects a request (bad rule, unknown setting, ...)."""


class SandboxControl:
    """Each call opens and closes its own connection: control calls are rare, and nothing is
    left open for a test to trip over when the sandbox stops."""

    def __init__(self, url: str, timeout_s: float = 10.0, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Connection": "close"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"

    def reset(self) -> None:
        """Forget calls, scripted and random faults, and the request log; keep config and tokens."""
        self._call("POST", "/_sandbox/reset")

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change any SandboxConfig field but the credentials; returns the whole config."""
        if isinstance(changes.get("call_seconds"), tuple):
            changes["call_seconds"] = list(changes["call_seconds"])
        result: dict[str, Any] = self._call("POST", "/_sandbox/config", changes)
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_sandbox/config")
        return result

    def script(self, rules: list[dict[str, Any]]) -> dict[str, Any]:
        """Add fault rules after the existing ones; see docs/sandbox.md for the format."""
        result: dict[str, Any] = self._call("POST", "/_sandbox/faults", {"rules": rules})
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def faults(self) -> dict[str, Any]:
        """The rules with how many requests each has seen and fired on, and the random faults."""
        result: dict[str, Any] = self._call("GET", "/_sandbox/faults")
        return result

    def random_faults(
        self,
        seed: int,
        rates: dict[str, float],
        match: dict[str, str] | None = None,
        hang_seconds: float | None = None,
        slow_seconds: float = 1.0,
    ) -> dict[str, Any]:
        body = {
            "seed": seed,
            "rates": rates,
            "match": match,
            "hang_seconds": hang_seconds,
            "slow_seconds": slow_seconds,
        }
        result: dict[str, Any] = self._call("POST", "/_sandbox/faults/random", body)
        return result

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Logged API requests (seq > ``since``), oldest first."""
        entries: list[dict[str, Any]] = self._call("GET", f"/_sandbox/requests?since={since}")[
            "requests"
        ]
        return entries

    def calls(self, live_only: bool = False) -> list[dict[str, Any]]:
        suffix = "?live=true" if live_only else ""
        calls: list[dict[str, Any]] = self._call("GET", f"/_sandbox/calls{suffix}")["calls"]
        return calls

    def live_count(self) -> int:
        return int(self._call("GET", "/_sandbox/live")["live"])

    def end_call(self, connection_id: str) -> dict[str, Any]:
        """The far end hangs up now; the call is recorded as ended by ``hangup``."""
        result: dict[str, Any] = self._call("POST", f"/_sandbox/calls/{connection_id}/end")
        return result

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(
            method,
            self.url + path,
            json=body,
            timeout=self.timeout_s,
            headers=self._headers,
        )
        if response.status_code >= 400:
            raise SandboxControlError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()
