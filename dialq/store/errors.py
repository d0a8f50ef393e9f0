"""The store's own errors: nothing above `dialq.store` catches SQLAlchemy's.

Split by what the caller must do: a `Conflict` means another writer got there first (read what
it wrote); `DatabaseUnavailable` means try again later (the connection dropped, the server is
down, SQLite stayed locked).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc


class StoreError(Exception):
    """Raised when the database refuses or fails a unit of work; the root of the store's errors."""


class Conflict(StoreError):
    """Raised when a write breaks a unique or foreign-key constraint (a concurrent writer won)."""


class EventNumberTaken(Conflict):
    """Raised when two writers gave a call's events the same number: one wrote its event in
    the statement that locked the row (`event_in_statement`), numbered in a snapshot taken
    before another's event was committed. The same work, done again, numbers it after."""


# The unique index on (call_id, seq) of events (migration 0011).
EVENT_NUMBER_INDEX = "uq_events_call_seq"


class DatabaseUnavailable(StoreError):
    """Raised when the database cannot be reached or used now; the same work may succeed later."""


@contextmanager
def translated() -> Iterator[None]:
    """Turn SQLAlchemy's errors into the store's, keeping the original as the cause.

    The message names the error class only: SQLAlchemy's text carries the statement's
    parameters, which may hold a phone number, an e-mail or a callback token.
    """
    try:
        yield
    except exc.IntegrityError as error:
        if _constraint(error) == EVENT_NUMBER_INDEX:
            raise EventNumberTaken(f"event number taken ({_kind(error)})") from error
        raise Conflict(f"conflicting write ({_kind(error)})") from error
    except (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError) as error:
        raise DatabaseUnavailable(f"database unavailable ({_kind(error)})") from error


def _constraint(error: exc.DBAPIError) -> str | None:
    """The name of the constraint a write broke, where the driver says (psycopg does)."""
    diag = getattr(error.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return name if isinstance(name, str) else None


def _kind(error: exc.DBAPIError | exc.DisconnectionError) -> str:
    orig = getattr(error, "orig", None)
    return type(orig).__name__ if orig is not None else type(error).__name__
