"""A call read for a key: found only when one of the key's accounts owns it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from dialq.http.auth import Principal
from dialq.http.problems import ApiProblem
from dialq.http.state import ApiState
from dialq.store import Call, Session, calls_repo

T = TypeVar("T")


def owned_read(
    state: ApiState, principal: Principal, call_id: str, read: Callable[[Session, Call], T]
) -> T:
    """`read(session, call)` while the session is open, if the key's accounts own the call;
    else a 404 (another account's call is no more visible than a missing one)."""
    with state.database().sessions() as session:
        call = calls_repo.get_call(session, call_id)
        if call is None or not principal.sees(call.account):
            raise ApiProblem(404, "no such call")
        return read(session, call)


def owned(state: ApiState, principal: Principal, call_id: str, show: Callable[[Call], T]) -> T:
    """`show(call)`, read while its session is open, if the key's accounts own it; else 404."""
    return owned_read(state, principal, call_id, lambda _session, call: show(call))
