"""Alembic environment: runs on the connection dialq hands over, or opens one from the URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from dialq.store.tables import Base

config = context.config
connection = config.attributes.get("connection")


def run(conn: Connection) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    # hide_parameters: a failed statement's text must not quote the values it carried.
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", hide_parameters=True)
    try:
        # Not engine.begin(): Alembic begins (and commits) its own transactions, so the
        # migrations that index large tables on PostgreSQL can build CONCURRENTLY.
        with engine.connect() as conn:
            run(conn)
    finally:
        engine.dispose()  # a bare `alembic upgrade` must not leave PostgreSQL sessions open
