"""Wiring for one process: the database, Redis, HTTP sessions, token providers, the service."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

import redis
import requests

from dialq import routing
from dialq.calls.service import CallService
from dialq.capacity import Capacity
from dialq.config import Settings
from dialq.insights.harvest import InsightsService
from dialq.publisher import Publisher
from dialq.store import Database
from dialq.store.insights_repo import insights_summary
from dialq.symbl.auth import RedisTokenStore, TokenProvider
from dialq.symbl.client import AttemptRecord, SymblClient
from dialq.webhooks.delivery import WebhookService, register


class Runtime:
    """Everything a worker or producer process shares between its threads."""

    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        self.settings = settings
        self.db = Database(settings.database_url_resolved)
        if settings.auto_migrate:
            self.db.upgrade()
        self.redis = redis.Redis.from_url(settings.broker_url)
        self._local = threading.local()
        token_store = RedisTokenStore(self.redis, prefix=f"{routing.REDIS_PREFIX}token:")
        self.tokens = {
            name: TokenProvider(
                name,
                account,
                token_store,
                self._session(),
                renew_margin_s=settings.token_renew_margin_s,
                connect_timeout_s=settings.http_connect_timeout_s,
                read_timeout_s=settings.http_read_timeout_s,
            )
            for name, account in settings.accounts.items()
        }
        self.capacity = Capacity(
            self.redis,
            {name: account.max_concurrent_calls for name, account in settings.accounts.items()},
        )
        self.service = CallService(
            settings,
            self.db,
            self.client_for,
            publisher,
            capacity=self.capacity,
            worker_id=f"{socket.gethostname()}:{os.getpid()}",
        )
        self.insights = InsightsService(settings, self.db, self.client_for, publisher)
        self.webhooks = WebhookService(settings, self.db, publisher, insights=insights_summary)
        register(self.db, publisher, settings)  # every committed event nudges its delivery

    def _session(self) -> requests.Session:
        # requests.Session is not documented as thread-safe: one per thread.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
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
        self.db.dispose()
        self.redis.close()
