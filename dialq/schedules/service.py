"""Schedules by name: upsert, pause, resume, remove, preview. Writes no calls itself."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dialq.config import Settings
from dialq.schedules.occurrences import utcnow
from dialq.schedules.rules import next_after, occurrences
from dialq.schedules.spec import InvalidSchedule, ScheduleDefinition, parse_schedule, rule_of
from dialq.store import Conflict, Database, Session
from dialq.store import schedules_repo as repo
from dialq.store.schedule_tables import Schedule
from dialq.validation.errors import FieldError


class UnknownSchedule(LookupError):
    """Raised when no schedule has the given name."""


@dataclass(frozen=True)
class SavedSchedule:
    id: str
    name: str
    created: bool
    next_due_at: datetime | None


class ScheduleService:
    """Schedules by name: upsert, pause, resume, remove, preview. Writes no calls itself."""

    def __init__(
        self, settings: Settings, db: Database, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.settings = settings
        self.db = db
        self._clock = clock

    def upsert(
        self, data: Mapping[str, Any] | ScheduleDefinition, *, source: str = "api"
    ) -> SavedSchedule:
        """Create or update the schedule of this name; InvalidSchedule stores nothing."""
        definition = data if isinstance(data, ScheduleDefinition) else self.parse(data)
        try:
            return self._upsert(definition, source)
        except Conflict:
            # Another process created the same name between our read and our insert.
            return self._upsert(definition, source)

    def parse(self, data: Mapping[str, Any]) -> ScheduleDefinition:
        definition = parse_schedule(
            data,
            allowed_country_codes=self.settings.allowed_country_codes,
            summary_email_domains=self.settings.summary_email_domains,
        )
        account = definition.template.get("account", "default")
        if account not in self.settings.accounts:
            raise InvalidSchedule([FieldError("call.account", "names no configured account")])
        return definition

    def _upsert(self, definition: ScheduleDefinition, source: str) -> SavedSchedule:
        with self.db.transaction() as session:
            return self.upsert_in(session, definition, source)

    def upsert_in(
        self, session: Session, definition: ScheduleDefinition, source: str
    ) -> SavedSchedule:
        """`upsert` inside the caller's transaction (a schedules file writes all of its
        schedules in one); InvalidSchedule leaves the caller to roll back."""
        now = self._clock()
        row = repo.find(session, definition.name)
        created = row is None
        if row is None:
            row = Schedule(id=str(uuid.uuid4()), name=definition.name, created_at=now)
            session.add(row)
        retimed = created or row.timing_fingerprint != definition.timing_fingerprint()
        resumed = definition.enabled and not created and not row.enabled
        _apply(row, definition, source, now)
        if retimed or resumed:
            row.next_due_at = self._first_due(row, now, check=retimed)
        if not row.enabled:
            row.next_due_at = None
        return SavedSchedule(row.id, row.name, created, row.next_due_at)

    def _first_due(self, row: Schedule, now: datetime, *, check: bool) -> datetime | None:
        """The first occurrence after now; a new timing with none left is an error."""
        first = next_after(rule_of(row, row.created_at), now)
        if first is None and check:
            field = "at" if row.kind == "at" else "end" if row.end_at else "count"
            raise InvalidSchedule([FieldError(field, "leaves no occurrence in the future")])
        return first

    def set_enabled(self, name: str, enabled: bool) -> SavedSchedule:
        """Pause (no occurrence is due while paused) or resume (from now on, none replayed)."""
        now = self._clock()
        with self.db.transaction() as session:
            row = self._get(session, name)
            if row.enabled != enabled:
                row.enabled = enabled
                row.updated_at = now
                row.next_due_at = self._first_due(row, now, check=False) if enabled else None
        return SavedSchedule(row.id, row.name, False, row.next_due_at)

    def remove(self, name: str) -> None:
        with self.db.transaction() as session:
            if not repo.remove(session, name):
                raise UnknownSchedule(f"no schedule named {name!r}")

    def next_occurrences(
        self, name: str, count: int, after: datetime | None = None
    ) -> list[datetime]:
        with self.db.sessions() as session:
            row = self._get(session, name)
        return occurrences(rule_of(row, row.created_at), after or self._clock(), count)

    def get(self, name: str) -> Schedule:
        with self.db.sessions() as session:
            return self._get(session, name)

    def _get(self, session: Any, name: str) -> Schedule:
        row = repo.find(session, name)
        if row is None:
            raise UnknownSchedule(f"no schedule named {name!r}")
        return row


def _apply(row: Schedule, definition: ScheduleDefinition, source: str, now: datetime) -> None:
    for name in ("kind", "cron", "every_s", "at", "timezone", "start_at", "end_at", "count"):
        setattr(row, name, getattr(definition, name))
    row.template = definition.template
    row.timing_fingerprint = definition.timing_fingerprint()
    row.misfire_grace_s = definition.misfire_grace_s
    row.overlap = definition.overlap
    row.enabled = definition.enabled
    row.source = source
    row.updated_at = now
