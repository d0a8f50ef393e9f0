"""The database: the source of truth for every call (docs/architecture.md, "Invariants").

Every SQL statement lives in this package. Callers get rows, plain values and the store's own
errors; `Session` is re-exported so use cases can type a unit of work without importing
SQLAlchemy.
"""

from sqlalchemy.orm import Session

from dialq.store.db import Database
from dialq.store.errors import Conflict, DatabaseUnavailable, EventNumberTaken, StoreError
from dialq.store.tables import Attempt, Call, CallStatus, Event

__all__ = [
    "Attempt",
    "Call",
    "CallStatus",
    "Conflict",
    "Database",
    "DatabaseUnavailable",
    "Event",
    "EventNumberTaken",
    "Session",
    "StoreError",
]
