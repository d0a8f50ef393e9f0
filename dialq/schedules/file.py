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

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

from dialq.clock import utcnow
from dialq.schedules.rules import next_after
from dialq.schedules.spec import InvalidSchedule, ScheduleDefinition, rule_of
from dialq.store import Conflict, Database, DatabaseUnavailable
from dialq.store import schedules_repo as repo
from dialq.validation.errors import FieldError

if TYPE_CHECKING:
    from dialq.schedules.api import ScheduleService

log = logging.getLogger("dialq.schedules")
SOURCE = "file"
# A file's one transaction is tried this often when the database is briefly unavailable (or a
# concurrent writer created one of its names first); then the watcher's next tick tries again.
WRITE_TRIES = 4


def read_file(path: Path, service: ScheduleService) -> list[ScheduleDefinition]:
    """Every schedule in the file, validated; InvalidSchedule names `schedules.NAME.field`."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InvalidSchedule([FieldError(str(path), f"cannot be read: {error}")]) from None
    except RecursionError:
        # tomllib reads nested arrays and tables recursively: ~1,000 levels exhaust the stack.
        rule = "cannot be read: arrays or tables nested too deeply"
        raise InvalidSchedule([FieldError(str(path), rule)]) from None
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


def _write_errors(definitions: list[ScheduleDefinition], db: Database) -> list[FieldError]:
    """What the service refuses only while writing, checked before the first write: a new or
    re-timed schedule with no occurrence left after now."""
    now = utcnow()
    errors: list[FieldError] = []
    with db.sessions() as session:
        for definition in definitions:
            row = repo.find(session, definition.name)
            if row is not None and row.timing_fingerprint == definition.timing_fingerprint():
                continue  # its timing is unchanged: the service does not look at it again
            created_at = row.created_at if row is not None else now
            if next_after(rule_of(definition, created_at), now) is None:
                field = "at" if definition.kind == "at" else "end" if definition.end_at else "count"
                rule = "leaves no occurrence in the future"
                errors.append(FieldError(f"schedules.{definition.name}.{field}", rule))
    return errors


def sync_file(path: Path, service: ScheduleService) -> list[str]:
    """Upsert every schedule in the file and remove file schedules it no longer declares.

    All or nothing: every error is reported before the first write (including what is checked
    against the stored schedules), and the whole file is written in one transaction, so a
    failure part way leaves the schedules as they were. That transaction is tried again when
    the database is briefly unavailable. Returns the names upserted.
    """
    definitions = read_file(path, service)
    errors = _write_errors(definitions, service.db)
    if errors:
        raise InvalidSchedule(errors)
    retrying = Retrying(
        retry=retry_if_exception_type((DatabaseUnavailable, Conflict)),
        stop=stop_after_attempt(WRITE_TRIES),
        wait=wait_incrementing(start=0.5, increment=0.5),
        before_sleep=lambda state: log.warning(
            "schedules file %s: writing it failed (%s); trying again",
            path,
            state.outcome.exception() if state.outcome else "?",
        ),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            removed = _write(definitions, service)
    for name in removed:
        log.info("schedule %s removed: no longer in %s", name, path)
    return sorted(d.name for d in definitions)


def _write(definitions: list[ScheduleDefinition], service: ScheduleService) -> list[str]:
    """The file's desired state in one transaction; the names of file schedules removed."""
    declared = {d.name for d in definitions}
    with service.db.transaction() as session:
        for definition in definitions:
            service.upsert_in(session, definition, SOURCE)
        stale = sorted(set(repo.names_from_source(session, SOURCE)) - declared)
        for name in stale:
            repo.remove(session, name)
    return stale


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
        try:
            names = sync_file(self.path, self.service)
        except InvalidSchedule as error:
            # The previous schedules stay as they were; fix the file and it is read again.
            self._seen = signature
            log.error("schedules file %s not applied: %s", self.path, error)
            return
        except (DatabaseUnavailable, Conflict) as error:
            # Not the file's fault: unseen, so the next tick applies it again.
            log.warning("schedules file %s not applied yet, will retry: %s", self.path, error)
            return
        self._seen = signature
        log.info("schedules file %s applied: %d schedule(s)", self.path, len(names))

    def _warn_once(self, signature: tuple[object, ...], message: str) -> None:
        if self._seen != signature:
            self._seen = signature
            log.warning(message)
