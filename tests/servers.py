"""Finding the servers tests need: skip locally when one is missing, fail when CI is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_ADMIN_URL = os.environ.get("DIALQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def missing_server(what: str) -> None:
    """CI must never pass by skipping: a missing server is a failure there."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but was not found", pytrace=False)
    pytest.skip(f"{what} not available")


@contextmanager
def private_pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test run; yields a SQLAlchemy URL bound to it."""
    import psycopg

    schema = f"dialq_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        missing_server(f"PostgreSQL at {PG_ADMIN_URL}")
        raise  # unreachable: missing_server always raises
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            base = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
            yield f"{base}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
