"""Capacity for operators, and the probes: /healthz (the process) and /readyz (its servers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from dialq.http.auth import Principal, requires
from dialq.http.keys import ADMIN
from dialq.http.problems import RETRY_AFTER_S, responses
from dialq.http.schemas import CapacityOut, CheckOut, HealthOut, ReadyOut
from dialq.http.state import ApiState, api_state
from dialq.store import DatabaseUnavailable
from dialq.store import calls_repo as repo
from dialq.store.db import schema_levels

router = APIRouter()


@router.get(
    "/v1/capacity",
    response_model=list[CapacityOut],
    tags=["operations"],
    summary="Capacity per account",
    responses=responses(401, 403, 503),
)
def capacity(
    request: Request, principal: Annotated[Principal, Depends(requires(ADMIN))]
) -> list[CapacityOut]:
    """Per account of the key: permits in use, waiting calls, learned limit, recent 429s."""
    state = api_state(request)
    with state.database().sessions() as session:
        waiting = dict(repo.count_by_account(session, status="waiting"))
    rows = []
    for account in sorted(principal.accounts & set(state.settings.accounts)):
        usage = state.runtime.capacity.usage(account)
        rows.append(
            CapacityOut(
                account=account,
                configured_limit=usage.configured_limit,
                learned_limit=usage.learned_limit,
                permits_in_use=usage.permits_in_use,
                waiting_calls=waiting.get(account, 0),
                cooldown_ms=usage.cooldown_ms,
                http_429_last_hour=usage.http_429_last_hour,
            )
        )
    return rows


@router.get("/healthz", response_model=HealthOut, tags=["probes"], summary="The process is up")
def healthz() -> HealthOut:
    return HealthOut()


def _database_check(state: ApiState) -> CheckOut:
    try:
        current, heads = schema_levels(state.settings.database_url_resolved)
    except DatabaseUnavailable:
        return CheckOut(ok=False, detail="cannot connect")
    if current == heads:
        return CheckOut(ok=True, detail="at the newest schema")
    missing = ", ".join(sorted(heads - current)) or "?"
    return CheckOut(ok=False, detail=f"schema not up to date (missing {missing})")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    tags=["probes"],
    summary="Database, broker and migration level",
    responses={503: {"model": ReadyOut, "description": "Not ready: see checks"}},
)
def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers at the newest migration and the broker answers."""
    state = api_state(request)
    broker = state.broker_answers()
    checks = {
        "database": _database_check(state),
        "broker": CheckOut(ok=broker, detail="answers" if broker else "cannot connect"),
    }
    ready = all(check.ok for check in checks.values())
    body = ReadyOut(status="ready" if ready else "not ready", checks=checks)
    headers = {} if ready else {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503, headers=headers)
