"""Databases for tests: the PostgreSQL schema is shared by a run, so each test empties the
tables it writes before it starts."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text

from dialq.store import Database

# Children before parents: SQLite enforces no ON DELETE CASCADE unless asked to.
CALL_TABLES = ("webhook_attempts", "webhook_cursors", "insights", "attempts", "events", "calls")
API_TABLES = (*CALL_TABLES, "api_keys", "schedule_occurrences", "schedules")


def empty_database(url: str, tables: Iterable[str] = CALL_TABLES) -> Database:
    """The database at `url`, migrated, with `tables` emptied; the caller disposes of it."""
    database = Database(url)
    database.upgrade()
    with database.transaction() as session:
        for table in tables:
            session.execute(text(f"DELETE FROM {table}"))
    return database
