"""The database: the source of truth for every call (design.md §2)."""

from dialq.store.db import Database
from dialq.store.tables import Attempt, Call, CallStatus, Event

__all__ = ["Attempt", "Call", "CallStatus", "Database", "Event"]
