"""The sandbox's whole state, owned by one event loop: config, tokens, calls, log, faults."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from typing import Any

from dialq.sandbox.config import SandboxConfig
from dialq.sandbox.faults import FaultPlan, RandomFaults, parse_rules
from dialq.sandbox.requestlog import RequestLog
from dialq.sandbox.state import CallBook, Clock
from dialq.sandbox.tokens import TokenIssuer
from dialq.sandbox.wire import retry_after_value

TOKEN_PATH = "/oauth2/token:generate"  # noqa: S105  (a path, not a password)


class Sandbox:
    """Everything a request can see or change.

    Only the server's event loop touches it (the control API included), so no locks are needed
    and a capacity check and its insert are never interleaved with another request.
    """

    def __init__(self, config: SandboxConfig, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        self.tokens = TokenIssuer(clock)
        self.book = CallBook(clock, config.seed)
        self.log = RequestLog(config.request_log_limit, config.request_log_max_bytes)
        self.faults = FaultPlan()
        self._arm_configured_faults()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def reset(self) -> None:
        """Forget calls, faults and the log; keep the config and every token issued."""
        self.book = CallBook(self.clock, self.config.seed)
        self.log.clear(self.config.request_log_limit, self.config.request_log_max_bytes)
        self.faults.clear()
        self._arm_configured_faults()

    def configure(self, changes: dict[str, Any]) -> SandboxConfig:
        """All or nothing: every change is checked and built before any is applied, so an
        invalid config (ConfigError) leaves the sandbox exactly as it was."""
        old, new = self.config, self.config.updated(changes)
        rules = parse_rules(new.fault_rules, "fault_rules")
        random = RandomFaults.parse(new.seed, new.fault_rates) if new.fault_rates else None
        self.config = new
        if new.seed != old.seed:
            self.book.reseed(new.seed)
        limits = (new.request_log_limit, new.request_log_max_bytes)
        if limits != (old.request_log_limit, old.request_log_max_bytes):
            self.log.clear(*limits)
        if new.fault_rules != old.fault_rules:
            self.faults.arm(rules)
        if new.fault_rates != old.fault_rates or new.seed != old.seed:
            self.faults.random = random
        return new

    def vouches(self, path: str, token: str | None, body: Any) -> bool:
        """Whether the sender is known: a valid token, or a token request with the right
        credentials. Only then is its body worth keeping in the log."""
        if path == TOKEN_PATH:
            if not isinstance(body, dict):
                return False
            app_id, secret = body.get("appId"), body.get("appSecret")
            if not (isinstance(app_id, str) and isinstance(secret, str)):
                return False
            id_ok = hmac.compare_digest(_raw(app_id), _raw(self.config.app_id))
            return id_ok and hmac.compare_digest(_raw(secret), _raw(self.config.app_secret))
        return self.tokens.is_valid(token)

    def capacity_headers(self) -> dict[str, str]:
        """Retry-After for a capacity 429, only when configured: the real API sends none."""
        config = self.config
        if config.retry_after_s is None:
            return {}
        if config.retry_after_format == "date":
            return {"retry-after": retry_after_value(f"date:{config.retry_after_s}", self.clock())}
        return {"retry-after": retry_after_value(config.retry_after_s)}

    def loop_started(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> asyncio.Event:
        if self._stopping is None:
            self.loop_started()
        assert self._stopping is not None
        return self._stopping

    def begin_shutdown(self) -> None:
        """From any thread: release held replies so the server can finish its requests."""
        if self._loop is None or self._stopping is None:
            return
        # A closed loop raises RuntimeError; then nothing is held any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stopping.set)

    def _arm_configured_faults(self) -> None:
        self._arm_fault_rules()
        self._arm_random_faults()

    def _arm_fault_rules(self) -> None:
        # Parsed afresh each time, so a reset also restarts the rules' request counts.
        self.faults.arm(parse_rules(self.config.fault_rules, "fault_rules"))

    def _arm_random_faults(self) -> None:
        rates = self.config.fault_rates
        self.faults.random = RandomFaults.parse(self.config.seed, rates) if rates else None


def _raw(text: str) -> bytes:
    # JSON may carry lone surrogates ("\\ud800"); they must compare, not raise.
    return text.encode("utf-8", "surrogatepass")
