"""The composition root: one Runtime per process builds every shared part, each on first use.

Workers reach it through their task base class (dialq.worker.DialqTask), producers through
dialq.api.producer_runtime, the CLI through the same. Nothing else builds a database engine, a
Redis client, a token provider or a service (the worker's metrics endpoint keeps an engine of
its own on purpose: a scrape never takes a connection a task is waiting for).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import redis
import requests

from dialq import routing
from dialq.calls.service import CallService
from dialq.capacity import Capacity
from dialq.circuit import Circuit
from dialq.config import Settings
from dialq.insights.harvest import InsightsService
from dialq.publisher import Publisher, SafePublisher
from dialq.schedules.file import FileWatcher
from dialq.schedules.occurrences import ScheduleDispatcher, TickReport
from dialq.schedules.service import ScheduleService
from dialq.store import Database
from dialq.store.insights_repo import insights_summary
from dialq.symbl.auth import RedisTokenStore, TokenProvider
from dialq.symbl.client import AttemptRecord, SymblClient
from dialq.symbl.transport import ApiSession
from dialq.webhooks.delivery import WebhookService, register

_T = TypeVar("_T")
# A pooled connection idle longer than this is not reused (see Runtime._session).
KEEPALIVE_REUSE_S = 1.5


class built_once(Generic[_T]):
    """A member built on first use, then read from the instance's `__dict__` with no lock.

    Not `functools.cached_property`: on Python 3.11 it holds one lock per member while the
    member is built, and a member's build takes the Runtime's lock and builds other members.
    Two threads whose first tasks reach two members at once (a worker's first ticks) each held
    one lock and waited on the other's, forever: the worker took messages and ran none.
    """

    def __init__(self, build: Callable[[Any], _T]) -> None:
        self.build = build

    def __get__(self, instance: Any, owner: type | None = None) -> _T:
        # Runtime._build stores the value under the member's name: later reads find it there
        # first (a descriptor without __set__ never shadows the instance's own attribute).
        return self.build(instance)


class Runtime:
    """Everything a worker or producer process shares between its threads.

    Members are built on first use, under one lock, so a producer that only writes schedules
    never opens Redis, and a CLI command that only reads never builds a token provider.
    """

    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        self.settings = settings
        self.publisher = SafePublisher(publisher)
        self._local = threading.local()
        self._lock = threading.RLock()
        self._closers: list[Callable[[], None]] = []

    def _build(self, name: str, make: Callable[[], object]) -> object:
        # The first build under the one (reentrant) lock wins, so two threads never build two
        # engines; the value then sits in __dict__, where later reads find it without a lock.
        with self._lock:
            if name not in self.__dict__:
                self.__dict__[name] = make()
            return self.__dict__[name]

    @built_once
    def db(self) -> Database:
        def make() -> Database:
            db = Database(self.settings.database_url_resolved)
            if self.settings.auto_migrate:
                db.upgrade()
            # Every committed event nudges its webhook delivery.
            register(db, self.publisher, self.settings)
            self._closers.append(db.dispose)
            return db

        return self._build("db", make)  # type: ignore[return-value]

    @built_once
    def redis(self) -> redis.Redis:
        def make() -> redis.Redis:
            client = redis.Redis.from_url(self.settings.broker_url)
            self._closers.append(client.close)
            return client

        return self._build("redis", make)  # type: ignore[return-value]

    @built_once
    def tokens(self) -> dict[str, TokenProvider]:
        def make() -> dict[str, TokenProvider]:
            store = RedisTokenStore(self.redis, prefix=f"{routing.REDIS_PREFIX}token:")
            return {
                name: TokenProvider(
                    name,
                    account,
                    store,
                    self._session(),
                    renew_margin_s=self.settings.token_renew_margin_s,
                    connect_timeout_s=self.settings.http_connect_timeout_s,
                    read_timeout_s=self.settings.http_read_timeout_s,
                )
                for name, account in self.settings.accounts.items()
            }

        return self._build("tokens", make)  # type: ignore[return-value]

    @built_once
    def capacity(self) -> Capacity:
        limits = {n: a.max_concurrent_calls for n, a in self.settings.accounts.items()}
        return self._build("capacity", lambda: Capacity(self.redis, limits))  # type: ignore[return-value]

    @built_once
    def circuit(self) -> Circuit:
        def make() -> Circuit:
            return Circuit(
                self.redis,
                threshold=self.settings.api_circuit_threshold,
                cooldown_s=self.settings.api_circuit_cooldown_s,
                max_cooldown_s=self.settings.api_circuit_max_cooldown_s,
            )

        return self._build("circuit", make)  # type: ignore[return-value]

    @built_once
    def credentials(self) -> Circuit:
        def make() -> Circuit:
            # Open at the first refusal: every call of the account would meet the same one.
            return Circuit(
                self.redis,
                threshold=1,
                cooldown_s=self.settings.api_circuit_cooldown_s,
                max_cooldown_s=self.settings.api_circuit_max_cooldown_s,
                kind="credentials",
            )

        return self._build("credentials", make)  # type: ignore[return-value]

    @built_once
    def service(self) -> CallService:
        def make() -> CallService:
            return CallService(
                self.settings,
                self.db,
                self.client_for,
                self.publisher,
                capacity=self.capacity,
                circuit=self.circuit,
                credentials=self.credentials,
                worker_id=f"{socket.gethostname()}:{os.getpid()}",
            )

        return self._build("service", make)  # type: ignore[return-value]

    @built_once
    def insights(self) -> InsightsService:
        def make() -> InsightsService:
            return InsightsService(self.settings, self.db, self.client_for, self.publisher)

        return self._build("insights", make)  # type: ignore[return-value]

    @built_once
    def webhooks(self) -> WebhookService:
        def make() -> WebhookService:
            return WebhookService(self.settings, self.db, self.publisher, insights=insights_summary)

        return self._build("webhooks", make)  # type: ignore[return-value]

    @built_once
    def schedules(self) -> ScheduleService:
        return self._build(  # type: ignore[return-value]
            "schedules", lambda: ScheduleService(self.settings, self.db)
        )

    @built_once
    def _schedule_tick(self) -> tuple[FileWatcher, ScheduleDispatcher]:
        def make() -> tuple[FileWatcher, ScheduleDispatcher]:
            watcher = FileWatcher(self.schedules, self.settings.schedules_file)
            dispatcher = ScheduleDispatcher(self.settings, self.db, self.service.enqueue)
            return watcher, dispatcher

        return self._build("_schedule_tick", make)  # type: ignore[return-value]

    def dispatch_schedules(self) -> TickReport:
        """One dispatcher tick: reload the schedules file if it changed, then dispatch."""
        watcher, dispatcher = self._schedule_tick
        # Two ticks at once (two threads, two beats) are harmless: each occurrence is a unique
        # row, written with its call in one transaction.
        watcher.sync_if_changed()
        return dispatcher.tick()

    def _session(self) -> requests.Session:
        # requests.Session is not documented as thread-safe: one per thread.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = ApiSession()
            self._local.session = session
        now = time.monotonic()
        if now - getattr(self._local, "used_at", now) > KEEPALIVE_REUSE_S:
            # Servers close idle keep-alive connections (uvicorn after 5 s, gunicorn 2 s): a
            # start sent on one just as it closes is reset, and its outcome is unknown (one
            # call in 2,000 in a loaded benchmark). Idle this long, connect afresh.
            session.close()
        self._local.used_at = now
        return session

    def client_for(self, account: str, on_attempt: Callable[[AttemptRecord], None]) -> SymblClient:
        return SymblClient(
            self.settings.account(account),
            self.tokens[account],
            self._session(),
            connect_timeout_s=self.settings.http_connect_timeout_s,
            read_timeout_s=self.settings.http_read_timeout_s,
            on_attempt=on_attempt,
        )

    def close(self) -> None:
        with self._lock:
            for close in reversed(self._closers):
                close()
            self._closers.clear()
