"""Queries on calls: every state change is one conditional UPDATE plus its event row."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    Insert,
    Integer,
    Row,
    Select,
    String,
    Table,
    Update,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.schema import ScalarElementColumnDefault
from sqlalchemy.sql.selectable import TypedReturnsRows

from dialq.calls.states import CallStatus, check_transition
from dialq.store import observers, state_counts
from dialq.store.db import mark_changed
from dialq.store.tables import Attempt, Call, Event

# The attributes of Call that are columns: what an INSERT of a new call may set.
_CALL_COLUMNS = tuple(column.key for column in sa_inspect(Call).column_attrs)
# Core INSERTs on the tables, not on the mapped classes: the ORM's bulk path costs a producer
# about a millisecond of CPU per call in its plugins, for rows that need none of them.
_CALLS = cast(Table, Call.__table__)
_INSERT_CALL = insert(_CALLS)
_INSERT_EVENT = insert(cast(Table, Event.__table__))
_INSERT_ATTEMPT = insert(cast(Table, Attempt.__table__))
_EVENT_COLUMNS = ["call_id", "seq", "at", "from_status", "to_status", "detail"]


def add_call(
    session: Session, call: Call, *, detail: str | None = None, waited: str | None = None
) -> Call:
    """Insert a new call row with its first event (seq 1).

    `waited`: the call went from queued to waiting in line before its row was written (no
    free permit): the row is written waiting, with the events queued, then waiting (this
    detail), as if it had moved once written.
    """
    events: list[tuple[str | None, str, str | None]] = [(None, call.status, detail)]
    if waited is not None:
        check_transition({CallStatus.QUEUED}, CallStatus.WAITING)
        if call.status != CallStatus.WAITING.value:
            raise ValueError(f"a call that waited is written waiting, not {call.status}")
        events = [
            (None, CallStatus.QUEUED.value, detail),
            (CallStatus.QUEUED.value, CallStatus.WAITING.value, waited),
        ]
    # Core INSERTs, not the unit of work: every producer's call passes here, and a flush
    # costs several times the statements. `call` stays as given (not in the session).
    given = sa_inspect(call).dict
    values = {c: given[c] for c in _CALL_COLUMNS if c in given}
    if _writes_in_with(session):
        # One statement, one round trip: the events are inserted off the new row itself.
        values = {**_SCALAR_DEFAULTS, **values}  # a WITH's INSERT gets no defaults filled in
        params = {_NEW + key: value for key, value in values.items()}
        for seq, (from_status, to_status, text) in enumerate(events, start=1):
            params.update(
                {f"from_{seq}": from_status, f"to_{seq}": to_status, f"detail_{seq}": text}
            )
        session.execute(_call_with_events(tuple(values), len(events)), params)
    else:
        session.execute(_INSERT_CALL, values)
        rows = [
            {
                "call_id": call.id,
                "seq": seq,
                "at": call.created_at,
                "from_status": from_status,
                "to_status": to_status,
                "detail": text,
            }
            for seq, (from_status, to_status, text) in enumerate(events, start=1)
        ]
        session.execute(_INSERT_EVENT, rows)
    mark_changed(session, call.id)
    return call


def _writes_in_with(session: Session) -> bool:
    """Whether the database runs an INSERT inside a WITH (PostgreSQL), so that writes which
    would take statements of their own ride in one; SQLite does not."""
    return session.get_bind().dialect.name == "postgresql"


# The columns' Python-side defaults, given explicitly to the one-statement INSERT.
_SCALAR_DEFAULTS = {
    column.key: column.default.arg
    for column in _CALLS.columns
    if isinstance(column.default, ScalarElementColumnDefault)
}
# Prefix of the bound parameters of a new call's columns (see _SET).
_NEW = "new_"


@lru_cache(maxsize=64)
def _call_with_events(columns: tuple[str, ...], events: int) -> Insert:
    """PostgreSQL: the INSERT of a new call with these columns set, and of its first `events`
    events (numbered from 1, at the call's creation), as one statement. Built once per shape.
    The events reference the row the same statement inserts: PostgreSQL checks the foreign
    key at the end of the statement, when the row is there."""
    values = {name: bindparam(_NEW + name, type_=_CALLS.c[name].type) for name in columns}
    new_call = _INSERT_CALL.values(values).returning(_CALLS.c.id, _CALLS.c.created_at)
    written = new_call.cte("new_call")
    table = cast(Table, Event.__table__)
    rows = [
        select(
            written.c.id,
            literal(seq, Integer),
            written.c.created_at,
            bindparam(f"from_{seq}", type_=table.c.from_status.type),
            bindparam(f"to_{seq}", type_=table.c.to_status.type),
            bindparam(f"detail_{seq}", type_=table.c.detail.type),
        )
        for seq in range(1, events + 1)
    ]
    return _INSERT_EVENT.from_select(_EVENT_COLUMNS, rows[0] if events == 1 else union_all(*rows))


def get_call(session: Session, call_id: str) -> Call | None:
    return session.get(Call, call_id)


@dataclass(frozen=True, slots=True)
class ClaimFields:
    """What a delivery reads of its call to claim it: the columns the claim decides on."""

    id: str
    status: str
    account: str
    priority: int
    created_at: datetime
    not_before: datetime | None
    deadline_at: datetime
    cancel_requested_at: datetime | None
    max_duration_s: int
    start_attempts: int
    request: dict[str, Any]


# A Core SELECT of those columns: loading the whole mapped row (the ORM's identity map and
# instance state, thirty columns, two JSON documents) cost a worker a tenth of a dial's CPU.
_READ_FOR_CLAIM = select(*(_CALLS.c[field.name] for field in fields(ClaimFields))).where(
    _CALLS.c.id == bindparam("call_id", type_=String)
)


def read_for_claim(session: Session, call_id: str) -> ClaimFields | None:
    row = session.execute(_READ_FOR_CLAIM, {"call_id": call_id}).first()
    return None if row is None else ClaimFields(*row)


# Ids are UUID4 strings; a prefix is only ever these characters, so it never holds a LIKE wildcard.
_ID_PREFIX = re.compile(r"[0-9a-f-]{4,36}")


class AmbiguousCallId(LookupError):
    """A prefix that starts more than one call's id."""


def find_call(session: Session, given: str) -> Call | None:
    """The call `given` names: by its whole id, or by a unique prefix of at least 4 characters.

    People read short ids off `dialq calls` (as git does for commits); scripts use whole ids.
    """
    call = session.get(Call, given)
    prefix = given.lower()
    if call is not None or not _ID_PREFIX.fullmatch(prefix):
        return call
    found = session.scalars(select(Call).where(*_starting_with(prefix)).limit(2)).all()
    if len(found) > 1:
        raise AmbiguousCallId(given)
    return found[0] if found else None


def _starting_with(prefix: str) -> list[ColumnElement[bool]]:
    """Ids that start with `prefix`, as a range of the primary key.

    PostgreSQL only turns LIKE 'x%' into an index range under the C collation; a database
    created with C.UTF-8 or en_US scans every call. The range reads the index in any
    collation, and LIKE, now a filter on the few rows in it, keeps the answer exact.
    """
    conditions = [Call.id >= prefix, Call.id.startswith(prefix)]
    above = _above_prefix(prefix)
    if above is not None:
        conditions.append(Call.id < above)
    return conditions


def _above_prefix(prefix: str) -> str | None:
    """A string above every id that starts with `prefix`; None when none is (all f and -).

    Trailing f and - are dropped before the last hex digit is raised, so the bound is a run
    of hex digits: collations that skip '-' (en_US) order it as C does.
    """
    stem = prefix.rstrip("f-")
    if not stem:
        return None
    last = stem[-1]
    return stem[:-1] + ("a" if last == "9" else chr(ord(last) + 1))


def find_by_idempotency_key(session: Session, key: str) -> Call | None:
    return session.scalars(select(Call).where(Call.idempotency_key == key)).one_or_none()


def one_of(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], values: Collection[str]
) -> ColumnElement[bool]:
    """`column IN (values)` as equalities: an IN list's parameters are expanded into the SQL at
    every execution, which a hot path pays for at each step; equalities compile once."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return column == ordered[0]
    return or_(*(column == value for value in ordered))


def transition(
    session: Session,
    call_id: str,
    *,
    from_: Collection[CallStatus],
    to: CallStatus,
    now: datetime,
    detail: str | None = None,
    values: Mapping[str, Any] | None = None,
    event_in_statement: bool = False,
) -> bool:
    """Move a call from one of `from_` to `to` in one conditional UPDATE.

    Returns False, changing nothing, when the row is in no state of `from_`: that is how a
    second delivery of the same message learns that another worker already claimed the call.
    `event_in_statement`: as for `transition_returning`.
    """
    moved = transition_returning(
        session, call_id, from_=from_, to=to, now=now, detail=detail, values=values,
        event_in_statement=event_in_statement,
    )  # fmt: skip
    return moved is not None


def transition_returning(
    session: Session,
    call_id: str,
    *,
    from_: Collection[CallStatus],
    to: CallStatus,
    now: datetime,
    detail: str | None = None,
    values: Mapping[str, Any] | None = None,
    returning: Iterable[InstrumentedAttribute[Any]] = (),
    attempts: Iterable[AttemptLike] = (),
    event_in_statement: bool = False,
) -> Row[Any] | None:
    """`transition`, returning the moved row's `returning` columns (as they are after the
    UPDATE), or None when it did not move: what a caller would otherwise read back.

    `attempts` (HTTP attempts made on the way) are recorded whether or not it moved, as
    `record_attempts` would: on PostgreSQL in the UPDATE's own statement (one round trip).

    `event_in_statement`: on PostgreSQL the event is written by the UPDATE's own statement
    too. Its number and from-state are then read in the statement's snapshot, taken before
    the UPDATE waited for the row's lock: when another writer added an event to this call
    meanwhile, both take the same number and this raises `Conflict`, the whole transaction
    rolled back. A caller that asks for it must run the transaction again without it
    (`EventNumberTaken` says which conflict it was)."""
    check_transition(set(from_), to)
    allowed = tuple(sorted(state.value for state in from_))
    given = dict(values or {})
    rows = _attempt_rows(call_id, attempts)
    in_with = _writes_in_with(session)
    folded = len(rows) if rows and in_with else 0
    if rows and not folded:
        _insert_attempts(session, rows)
    shape = (allowed, tuple(sorted(given)), tuple(column.key for column in returning), folded)
    with_event = event_in_statement and in_with
    statement = _transition_with_event(*shape) if with_event else _transition_update(*shape)
    params: dict[str, Any] = {"call_id": call_id, "to_status": to.value, "updated_at": now}
    params.update({_SET + key: value for key, value in given.items()})
    for index, row in enumerate(rows[:folded]):
        params.update({f"{_ATTEMPT}{index}_{key}": value for key, value in row.items()})
    if with_event:
        params.update({"at": now, "detail": detail})
    moved = session.execute(statement, params).first()
    if folded:
        observers.note_inserted_attempts(session, rows)
    if moved is None:
        return None
    if with_event:
        mark_changed(session, call_id)
    else:
        _add_event(session, call_id, now, to.value, detail, left=allowed)
    return moved


# Prefix of the bound parameters a transition sets: never the name of a column (SQLAlchemy
# reserves a column's own name for its bind in an UPDATE's SET clause).
_SET = "set_"


# Prefix of the bound parameters of the attempts a transition's statement inserts.
_ATTEMPT = "attempt"


@lru_cache(maxsize=256)
def _transition_update(
    allowed: tuple[str, ...], keys: tuple[str, ...], returning: tuple[str, ...], attempts: int = 0
) -> Update:
    """The conditional UPDATE of one transition's shape (states it may leave, columns it sets,
    columns it returns, attempts it inserts: PostgreSQL only), built once: each step of every
    call runs one of a dozen shapes, and building and keying a statement anew cost a third of
    a dial's CPU (the statement is immutable, so its cache key is computed once too)."""
    statement = _bare_update(allowed, keys, returning)
    if attempts:
        statement = statement.add_cte(_attempts_made(attempts))
    return statement


def _bare_update(
    allowed: tuple[str, ...], keys: tuple[str, ...], returning: tuple[str, ...]
) -> Update:
    table = _CALLS
    return (
        update(table)
        .where(table.c.id == bindparam("call_id"), one_of(table.c.status, allowed))
        .values(
            status=bindparam("to_status"),
            updated_at=bindparam("updated_at"),
            **{key: bindparam(_SET + key) for key in keys},
        )
        .returning(table.c.id, *(table.c[key] for key in returning))
    )


def _attempts_made(attempts: int) -> CTE:
    """PostgreSQL: the INSERT of `attempts` HTTP attempts, as a WITH a statement does not read
    (PostgreSQL runs it once, to completion, either way). The rows are SELECTs of parameters,
    in order: a multi-row VALUES has no cache key, so SQLAlchemy would compile the whole
    statement again on every execution (a tenth of a dial's CPU), and separate INSERTs in a
    WITH run in no set order."""
    columns = cast(Table, Attempt.__table__).c
    rows = [
        select(
            *(
                bindparam(f"{_ATTEMPT}{index}_{name}", type_=columns[name].type)
                for name in _ATTEMPT_COLUMNS
            )
        )
        for index in range(attempts)
    ]
    made = _INSERT_ATTEMPT.from_select(
        _ATTEMPT_COLUMNS, rows[0] if attempts == 1 else union_all(*rows)
    )
    return made.cte("attempts_made")


@lru_cache(maxsize=256)
def _transition_with_event(
    allowed: tuple[str, ...], keys: tuple[str, ...], returning: tuple[str, ...], attempts: int = 0
) -> Select[Any]:
    """PostgreSQL: a transition's UPDATE and its event as one statement (and its attempts, as
    above). The event is inserted off the UPDATE's returned row, so only a call that moved
    gets one; the statement answers the UPDATE's RETURNING. Built once per shape."""
    moved = _bare_update(allowed, keys, returning).cte("moved")
    event = _INSERT_EVENT.from_select(
        _EVENT_COLUMNS, select(moved.c.id, *_event_values(allowed)[1:])
    ).cte("event_made")
    statement = select(*moved.c).add_cte(event)
    if attempts:
        statement = statement.add_cte(_attempts_made(attempts))
    return statement


@lru_cache(maxsize=64)
def _event_insert(allowed: tuple[str, ...] | None) -> Insert:
    """The INSERT ... SELECT of a transition's event, for the states it may leave (None: the
    event's from-state is a parameter, `from_status`). Built once per shape, as above.

    The row is locked by the transition's UPDATE, so no other transition can interleave an
    event: the latest one holds both the sequence number to follow and the state the call
    was just in, which the INSERT reads itself (no round trip to read them first)."""
    return _INSERT_EVENT.from_select(_EVENT_COLUMNS, select(*_event_values(allowed)))


def _event_values(allowed: tuple[str, ...] | None) -> list[ColumnElement[Any]]:
    """An event's columns, in _EVENT_COLUMNS' order, for a call whose id is `call_id`."""
    events = cast(Table, Event.__table__)
    call_id = bindparam("call_id", type_=String)
    next_seq = (
        select(func.coalesce(func.max(events.c.seq), 0) + 1)
        .where(events.c.call_id == call_id)
        .scalar_subquery()
    )
    from_status: ColumnElement[Any]
    if allowed is None:
        from_status = bindparam("from_status", type_=String)
    else:
        latest_to = (
            select(events.c.to_status)
            .where(events.c.call_id == call_id)
            .order_by(events.c.seq.desc())
            .limit(1)
            .scalar_subquery()
        )
        # One state it may have left is that state; of several, the one the latest event
        # moved it to (always one of them, unless events were lost: then NULL, not a guess).
        fallback = allowed[0] if len(allowed) == 1 else None
        from_status = case((one_of(latest_to, allowed), latest_to), else_=literal(fallback, String))
    return [
        call_id,
        next_seq,
        bindparam("at", type_=events.c.at.type),
        from_status,
        bindparam("to_status", type_=String),
        bindparam("detail", type_=String),
    ]


def move(
    session: Session,
    call_id: str,
    from_: Collection[CallStatus],
    to: CallStatus,
    now: datetime,
    reason: str,
) -> bool:
    """A transition whose detail is also the call's reason; a final one records its end."""
    values: dict[str, object] = {"reason": reason}
    if to.is_terminal:
        values["ended_at"] = now
    return transition(session, call_id, from_=from_, to=to, now=now, detail=reason, values=values)


def _add_event(
    session: Session,
    call_id: str,
    at: datetime,
    to_status: str,
    detail: str | None,
    *,
    left: tuple[str, ...] | None = None,
) -> None:
    """One event row, numbered next after the call's latest: from the state it left, one of
    `left` (read off the latest event), or without `left` from `to_status` itself (something
    happened, no state changed). Call it with the call's row locked."""
    params = {"call_id": call_id, "at": at, "to_status": to_status, "detail": detail}
    if left is None:
        params["from_status"] = to_status
    session.execute(_event_insert(left), params)
    mark_changed(session, call_id)


def append_event(
    session: Session, call_id: str, status: str | None, now: datetime, detail: str
) -> str | None:
    """Record something that happened to a call without a state change (e.g. insights ready).

    The event's from and to are `status`, or the call's current status when None. The row is
    locked first (a no-op UPDATE), so no transition can interleave a sequence number. Returns
    the status recorded, or None when the call does not exist.
    """
    current = session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(status=Call.status)
        .returning(Call.status)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if current is None:
        return None
    recorded = status or current
    _add_event(session, call_id, now, recorded, detail)
    return recorded


class AttemptLike(Protocol):
    """One HTTP attempt as a client reports it (dialq.symbl.transport.AttemptRecord)."""

    @property
    def operation(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def status(self) -> int | None: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def error(self) -> str | None: ...


def record_attempts(session: Session, call_id: str, attempts: Iterable[AttemptLike]) -> None:
    """The one writer of a call's HTTP attempts (start, stop, token, conversation reads).

    One Core INSERT, not ORM objects: a pending object makes the next statement flush the
    unit of work first, which cost as much as the transition it rode on (half of a dial's
    record step)."""
    rows = _attempt_rows(call_id, attempts)
    if rows:
        _insert_attempts(session, rows)


# What `_attempt_rows` sets: every column of the attempts table but its generated id.
_ATTEMPT_COLUMNS = tuple(
    column.key for column in cast(Table, Attempt.__table__).columns if not column.primary_key
)


def _attempt_rows(call_id: str, attempts: Iterable[AttemptLike]) -> list[dict[str, Any]]:
    return [
        {
            "call_id": call_id,
            "operation": attempt.operation,
            "started_at": attempt.started_at,
            "status_code": attempt.status,
            "latency_ms": attempt.latency_ms,
            "error": attempt.error,
        }
        for attempt in attempts
    ]


def _insert_attempts(session: Session, rows: list[dict[str, Any]]) -> None:
    session.execute(_INSERT_ATTEMPT, rows)
    observers.note_inserted_attempts(session, rows)


def list_calls(session: Session, *, status: str | None = None, limit: int = 50) -> list[Call]:
    """The newest calls first (ties by id), read in order off ix_calls_created: stops at `limit`."""
    query = select(Call).order_by(Call.created_at.desc(), Call.id).limit(limit)
    if status:
        query = query.where(Call.status == status)
    return list(session.scalars(query))


def count_by_account(session: Session, *, status: str) -> list[tuple[str, int]]:
    query = select(Call.account, func.count()).where(Call.status == status).group_by(Call.account)
    return [(row[0], int(row[1])) for row in session.execute(query)]


def due_for_dispatch(
    session: Session, *, now: datetime, horizon: datetime, limit: int = 500
) -> list[tuple[str, datetime | None]]:
    """Dialable calls due before `horizon` whose latest dial message is missing or stale.

    A message is stale once the moment it was due has passed by more than a sweep interval
    (`now` is expected to already be shifted back by that grace): it was lost with a crashed
    producer or worker, or never published because the call was due too far ahead.
    """
    query = (
        select(Call.id, Call.not_before)
        .where(
            # Waiting for a permit (no not_before) is woken by a release, not by this sweep.
            or_(
                Call.status == CallStatus.QUEUED.value,
                and_(Call.status == CallStatus.WAITING.value, Call.not_before.is_not(None)),
            ),
            or_(Call.not_before.is_(None), Call.not_before <= horizon),
            or_(Call.dispatch_due_at.is_(None), Call.dispatch_due_at < now),
        )
        .order_by(Call.priority.desc(), Call.created_at)
        .limit(limit)
    )
    return [(row.id, row.not_before) for row in session.execute(query)]


def clear_not_before(session: Session, call_id: str) -> None:
    session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(not_before=None, dispatch_due_at=None)
        .execution_options(synchronize_session=False)
    )


def update_waiting(session: Session, call_id: str, values: Mapping[str, object]) -> bool:
    """Change a `waiting` call's row without a state change (its wait moved); False if it is
    no longer waiting."""
    result = session.execute(
        update(Call)
        .where(Call.id == call_id, Call.status == CallStatus.WAITING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_dispatched(session: Session, call_id: str, due_at: datetime) -> None:
    session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(dispatch_due_at=due_at)
        .execution_options(synchronize_session=False)
    )


def time_waiting_call(
    session: Session, call_id: str, not_before: datetime, dispatch_due_at: datetime | None
) -> bool:
    """Give a waiting call the time it is due (and its message's): False when not waiting."""
    result = session.execute(
        update(Call)
        .where(Call.id == call_id, Call.status == CallStatus.WAITING.value)
        .values(not_before=not_before, dispatch_due_at=dispatch_due_at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def set_watch_due(session: Session, call_id: str, due_at: datetime) -> None:
    """When the watcher's next look at a live call is due (the watchdog republishes it late)."""
    session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(watch_due_at=due_at)
        .execution_options(synchronize_session=False)
    )


def take_look(
    session: Session, call_id: str, *, due_by: datetime, next_due: datetime
) -> Call | None:
    """Claim the next look at a live call and read it, in one statement: the call when the
    look is due by `due_by` (it is next due at `next_due`), or when a cancel waits for it while
    connected; None otherwise. Of several messages for one look, one gets the call."""
    params = {"call_id": call_id, "due_by": due_by, "next_due": next_due}
    return session.scalars(
        _take_look_statement(), params, execution_options={"synchronize_session": False}
    ).one_or_none()


def take_due_looks(
    session: Session, *, due_by: datetime, next_due: datetime, limit: int
) -> list[Call]:
    """Claim and read up to `limit` more connected calls whose looks are due by `due_by`, the
    earliest first, in one statement: one message then looks at a page of calls.

    Rows another transaction is claiming are skipped (PostgreSQL's SKIP LOCKED; SQLite has one
    writer at a time), so two pages never share a call. Stopping calls are left to their own
    messages: a stop in flight is never retried from someone else's page.
    """
    if limit <= 0:
        return []
    params = {"due_by": due_by, "next_due": next_due, "page_size": limit}
    found = session.scalars(
        _take_due_looks_statement(), params, execution_options={"synchronize_session": False}
    )
    return list(found)


# The looks' statements, built once with bound parameters like the transitions' (every live
# call's every look runs one of them): immutable, so their cache keys are computed once too.
@lru_cache(maxsize=1)
def _take_look_statement() -> TypedReturnsRows[Call]:
    live = [CallStatus.CONNECTED.value, CallStatus.STOPPING.value]
    cancel_waiting = and_(
        Call.status == CallStatus.CONNECTED.value, Call.cancel_requested_at.is_not(None)
    )
    due = or_(Call.watch_due_at.is_(None), Call.watch_due_at <= bindparam("due_by"), cancel_waiting)
    return (
        update(Call)
        .where(Call.id == bindparam("call_id"), one_of(Call.status, live), due)
        .values(watch_due_at=bindparam("next_due"))
        .returning(Call)
    )


@lru_cache(maxsize=1)
def _take_due_looks_statement() -> TypedReturnsRows[Call]:
    due = and_(
        Call.status == CallStatus.CONNECTED.value,
        Call.watch_due_at.is_not(None),
        Call.watch_due_at <= bindparam("due_by"),
    )
    # A materialized CTE, not `id IN (subquery)`: PostgreSQL may run such a subquery again
    # for each row it updates, and a LIMIT then stops limiting (a page of 4 took 6 calls).
    page = (
        select(Call.id)
        .where(due)
        .order_by(Call.watch_due_at)
        .limit(bindparam("page_size", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("page")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        update(Call)
        .where(Call.id == page.c.id, due)
        .values(watch_due_at=bindparam("next_due"))
        .returning(Call)
    )


def reclaim_stop(session: Session, call_id: str, *, seen_at: datetime, now: datetime) -> bool:
    """Take over a stop whose worker was lost: only if nothing touched the row since `seen_at`,
    so one of several deliveries retries it."""
    result = session.execute(
        update(Call)
        .where(Call.id == call_id, Call.status == CallStatus.STOPPING.value)
        .where(Call.updated_at == seen_at)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def flag_cancel(
    session: Session, call_id: str, statuses: Collection[CallStatus], now: datetime
) -> bool:
    """Ask the worker holding a call in one of `statuses` to stop it; False if it moved on."""
    result = session.execute(
        update(Call)
        .where(Call.id == call_id, one_of(Call.status, [s.value for s in statuses]))
        .values(cancel_requested_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def count_by_status(session: Session) -> dict[str, int]:
    """How many calls are in each state (states with none are absent).

    Exact, from the counts the triggers keep (`state_counts`): it costs what changed since the
    last fold, not one index entry per call of history.
    """
    return state_counts.count_by_status(session)


def oldest_created_in(session: Session, status: CallStatus) -> datetime | None:
    """When the oldest call now in `status` was created; None when no call is in it."""
    return session.scalar(select(func.min(Call.created_at)).where(Call.status == status.value))


def snapshot_all(session: Session) -> list[tuple[str, str, str, datetime, datetime | None, Any]]:
    """(id, status, account, updated_at, not_before, watch_due_at) of every call: the audit's
    view, without loading whole rows."""
    query = select(
        Call.id, Call.status, Call.account, Call.updated_at, Call.not_before, Call.watch_due_at
    )
    return [tuple(row) for row in session.execute(query).all()]  # type: ignore[misc]
