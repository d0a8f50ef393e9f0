"""What the stores hold, to compare before and after an input: row counts and Redis keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import func, inspect, select, table

from dialq import routing
from dialq.config import Settings
from dialq.store import Database
from tests.stack import APP_ID, APP_SECRET


def settings_for(redis_url: str, database_url: str, data_dir: Path) -> Settings:
    """Settings for a producer on the test's Redis and database (the sandbox is never called)."""
    return Settings(
        broker_url=redis_url,
        database_url=database_url,
        data_dir=data_dir,
        symbl_base_url="http://127.0.0.1:9",
        symbl_app_id=APP_ID,
        symbl_app_secret=APP_SECRET,
    )


def row_counts(db: Database) -> dict[str, int]:
    """Rows per table, every table the migrations made."""
    with db.sessions() as session:
        tables = inspect(session.get_bind()).get_table_names()
        return {
            name: int(session.execute(select(func.count()).select_from(table(name))).scalar_one())
            for name in tables
            if name != "alembic_version"
        }


def redis_sizes(client: redis.Redis) -> dict[str, tuple[str, int]]:
    """Every key with its type and size (list length, hash fields, set members, bytes)."""
    sizes: dict[str, tuple[str, int]] = {}
    for raw in client.scan_iter(count=1000):
        key = raw.decode(errors="replace")
        found = client.type(raw)
        kind = found.decode() if isinstance(found, bytes) else str(found)
        size = {
            "list": client.llen,
            "hash": client.hlen,
            "set": client.scard,
            "zset": client.zcard,
            "string": client.strlen,
        }.get(kind, lambda _: -1)(raw)
        sizes[key] = (kind, int(size))
    return sizes


@dataclass(frozen=True)
class Snapshot:
    rows: dict[str, int]
    keys: dict[str, tuple[str, int]]

    @property
    def dial_messages(self) -> int:
        return self.keys.get(routing.QUEUE_DIAL, ("list", 0))[1]


@contextmanager
def observed(settings: Settings) -> Iterator[tuple[Database, redis.Redis]]:
    db = Database(settings.database_url_resolved)
    db.upgrade()
    client = redis.Redis.from_url(settings.broker_url)
    try:
        yield db, client
    finally:
        client.close()
        db.dispose()


def snapshot(db: Database, client: redis.Redis) -> Snapshot:
    return Snapshot(row_counts(db), redis_sizes(client))


def empty_every_table(db: Database) -> None:
    """Delete every row (children first): the PostgreSQL schema is shared by the whole run."""
    from sqlalchemy import MetaData

    metadata = MetaData()
    with db.transaction() as session:
        metadata.reflect(bind=session.get_bind())
        for found in reversed(metadata.sorted_tables):
            if found.name != "alembic_version":
                session.execute(found.delete())
