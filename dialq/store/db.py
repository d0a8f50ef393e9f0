"""Engine, sessions and schema upgrades for SQLite and PostgreSQL alike."""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from dialq.store import liveness
from dialq.store.errors import translated
from dialq.store.tables import Event

MIGRATIONS = Path(__file__).parent / "migrations"
_CHANGED = "dialq.changed_calls"
log = logging.getLogger("dialq.store")


def _collect_changed_calls(session: Session, _context: Any) -> None:
    for item in session.new:
        if isinstance(item, Event):
            mark_changed(session, item.call_id)


def mark_changed(session: Session, call_id: str) -> None:
    """The call gained an event in this session's transaction (written without the unit of
    work, which the flush hook would have seen): its listeners hear of it after the commit."""
    session.info.setdefault(_CHANGED, set()).add(call_id)


def _forget_changed_calls(session: Session, _previous: Any) -> None:
    session.info.pop(_CHANGED, None)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the CLI, the demo's live view) run beside the workers' writes;
    # busy_timeout makes concurrent writers wait for the lock instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # In WAL mode NORMAL loses no committed transaction on a process crash (only on power
    # loss), and spares an fsync per commit: the difference between 50 and 300+ calls/s.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """hide_parameters: SQLAlchemy's error text otherwise quotes a statement's parameters (a
    phone number, an e-mail, a callback token) into tracebacks that Flower and logs show."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A connection PostgreSQL dropped (restart, failover) is replaced, not used: checked at
    # checkout only when its socket says it may be dead (`liveness`), not pinged every time.
    engine = create_engine(url, pool_size=5, max_overflow=10, hide_parameters=True)
    liveness.install(engine)
    return engine


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """SQLite runs DDL outside its write lock: serialise upgraders with a file lock instead."""
    path = url.split(":///", 1)[-1] if url.startswith("sqlite") else ""
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate-lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# The advisory lock every upgrader of one PostgreSQL database takes (any fixed number).
MIGRATION_LOCK = 7242917
LOCK_POLL_S = 0.25


def _upgrade_on(connection: Connection, url: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    # "heads": features add migrations on branches of their own; all of them apply.
    command.upgrade(config, "heads")


def _lock_migrations(connection: Connection) -> None:
    """Take the session lock by asking, not by waiting: a statement blocked on the lock holds
    a snapshot, which a CREATE INDEX CONCURRENTLY of the upgrader holding it waits out, and
    PostgreSQL ends that deadlock by failing one of them."""
    while True:
        taken = connection.exec_driver_sql(
            f"SELECT pg_try_advisory_lock({MIGRATION_LOCK})"
        ).scalar_one()
        connection.commit()
        if taken:
            return
        time.sleep(LOCK_POLL_S)


def _unlock_or_drop(connection: Connection) -> None:
    """Release the session lock; if that fails, close the session, which releases it too (a
    pooled connection must never keep it: the next upgrader would wait forever)."""
    try:
        connection.rollback()  # a failed migration leaves its transaction aborted
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
        connection.commit()
    except Exception:
        log.warning("could not release the migration lock: closing its session", exc_info=True)
        connection.invalidate()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's ini interpolation treats % specially; URLs may carry %-escapes.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def schema_levels(url: str) -> tuple[set[str], set[str]]:
    """(the database's migration heads, the code's) without migrating; raises DatabaseUnavailable
    when the database cannot be reached."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    engine = make_engine(url)
    try:
        with translated(), engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    return current, heads


ChangeListener = Callable[[set[str]], None]


class Database:
    """One engine and its session factory, built once per process.

    Listeners added with `on_change` hear, after each commit, the ids of the calls that
    gained an event in it: the events table is the outbox that webhooks and other
    followers read, and this is how they learn there is something new without polling.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._listeners: list[ChangeListener] = []
        event.listen(self._factory, "after_flush", _collect_changed_calls)
        event.listen(self._factory, "after_commit", self._announce)
        event.listen(self._factory, "after_soft_rollback", _forget_changed_calls)

    @contextmanager
    def sessions(self) -> Iterator[Session]:
        """A session for reads (or work committed by hand); store errors, not SQLAlchemy's."""
        with translated(), self._factory() as session:
            yield session

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _announce(self, session: Session) -> None:
        changed: set[str] = session.info.pop(_CHANGED, set())
        if not changed:
            return
        for listener in self._listeners:
            try:
                listener(changed)
            except Exception:
                # A follower failing (broker down) must not undo or fail a committed change;
                # its own sweeper picks the change up later.
                log.warning("change listener failed", exc_info=True)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration; safe when many processes start at once."""
        # A database that is down says so the way every other use of it does.
        with translated(), _migration_lock(self.url), self.engine.connect() as connection:
            if connection.dialect.name != "postgresql":
                with connection.begin():  # SQLite: all or nothing
                    _upgrade_on(connection, self.url)
                return
            # Handed over outside any transaction, so Alembic owns its transactions and the
            # migrations that index large tables build CONCURRENTLY (writes go on meanwhile).
            # The lock is the session's, not a transaction's, to outlive their commits:
            # concurrent upgraders still run one at a time.
            _lock_migrations(connection)
            try:
                _upgrade_on(connection, self.url)
            finally:
                _unlock_or_drop(connection)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with translated(), self._factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
