"""Declared schedules from a TOML file (DIALQ_SCHEDULES_FILE), upserted by name.

    [schedules.standup]
    cron = "0 9 * * 1-5"
    timezone = "America/New_York"
    call = { phone_number = "+14155550123", session_name = "Standup" }

The file is the desired state of the schedules it declares: a schedule that came from the file
and is no longer in it is removed. Schedules added by the CLI or the API are never touched.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dialq.schedules.spec import InvalidSchedule, ScheduleDefinition
from dialq.store import schedules_repo as repo
from dialq.validation.errors import FieldError

if TYPE_CHECKING:
    from dialq.schedules.api import ScheduleService

log = logging.getLogger("dialq.schedules")
SOURCE = "file"


def read_file(path: Path, service: ScheduleService) -> list[ScheduleDefinition]:
    """Every schedule in the file, validated; InvalidSchedule names `schedules.NAME.field`."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InvalidSchedule([FieldError(str(path), f"cannot be read: {error}")]) from None
    declared = document.get("schedules", {})
    unknown = sorted(set(document) - {"schedules"})
    errors = [FieldError(key, "unknown top-level key (use [schedules.NAME])") for key in unknown]
    if not isinstance(declared, dict):
        raise InvalidSchedule([FieldError("schedules", "must be a table of [schedules.NAME]")])
    definitions: list[ScheduleDefinition] = []
    for name, body in declared.items():
        where = f"schedules.{name}"
        if not isinstance(body, dict):
            errors.append(FieldError(where, "must be a table"))
            continue
        try:
            definitions.append(service.parse({"name": name, **body}))
        except InvalidSchedule as error:
            errors += [FieldError(f"{where}.{e.field}", e.rule) for e in error.errors]
    if errors:
        raise InvalidSchedule(errors)
    return definitions


def sync_file(path: Path, service: ScheduleService) -> list[str]:
    """Upsert every schedule in the file and remove file schedules it no longer declares.

    All or nothing on validation: one invalid schedule and nothing is written.
    Returns the names upserted.
    """
    definitions = read_file(path, service)
    for definition in definitions:
        service.upsert(definition, source=SOURCE)
    declared = {d.name for d in definitions}
    with service.db.sessions() as session:
        stale = set(repo.names_from_source(session, SOURCE)) - declared
    for name in sorted(stale):
        with service.db.transaction() as session:
            repo.remove(session, name)
        log.info("schedule %s removed: no longer in %s", name, path)
    return sorted(declared)


@dataclass
class FileWatcher:
    """Syncs the file at the first tick of a process and whenever its mtime or size changes."""

    service: ScheduleService
    path: Path | None
    _seen: tuple[object, ...] | None = None

    def sync_if_changed(self) -> None:
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except OSError as error:
            self._warn_once(("missing", 0), f"schedules file {self.path}: {error}")
            return
        signature = (stat.st_mtime, stat.st_size)
        if signature == self._seen:
            return
        self._seen = signature
        try:
            names = sync_file(self.path, self.service)
        except InvalidSchedule as error:
            # The previous schedules stay as they were; fix the file and it is read again.
            log.error("schedules file %s not applied: %s", self.path, error)
            return
        log.info("schedules file %s applied: %d schedule(s)", self.path, len(names))

    def _warn_once(self, signature: tuple[object, ...], message: str) -> None:
        if self._seen != signature:
            self._seen = signature
            log.warning(message)
