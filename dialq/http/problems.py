"""Errors as RFC 9457 problem details (application/problem+json), one shape for every answer.

Handlers here turn dialq's own errors into problems: a bad field into 422 with every broken
rule, a database or broker outage into 503 with Retry-After. A problem never echoes the input
(a phone number, an e-mail, a key): rules are dialq's plain words.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from dialq.store.errors import DatabaseUnavailable
from dialq.validation.errors import FieldError

PROBLEM_JSON: Final = "application/problem+json"
# How long a client should wait after a 503: about the time a database or Redis restart takes.
RETRY_AFTER_S: Final = 5
log = logging.getLogger("dialq.http")


class FieldProblem(BaseModel):
    """One broken rule: the field's path in the request, and the rule in plain words."""

    field: str = Field(examples=["phone_number", "summary_emails[1]", "query.limit"])
    rule: str = Field(examples=["is required (or give sip_uri instead)"])


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = Field(
        default=None, description="Every broken field (422 only)."
    )


class ApiProblem(Exception):
    """Raised by a route to answer with a problem; `headers` go on the response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, dict(headers or {})
        self.errors = errors


def unavailable(what: str) -> ApiProblem:
    return ApiProblem(
        503,
        f"{what} unavailable: nothing was recorded; retry later (with the same Idempotency-Key)",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def problem_response(problem: ApiProblem) -> JSONResponse:
    body = Problem(
        title=HTTPStatus(problem.status).phrase,
        status=problem.status,
        detail=problem.detail,
        errors=[FieldProblem(field=e.field, rule=e.rule) for e in problem.errors]
        if problem.errors is not None
        else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


# What a route may answer besides its success, for the OpenAPI document.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {}},
        }
        for status in statuses
    }


async def _api_problem(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiProblem)
    return problem_response(error)


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    detail = error.detail if isinstance(error.detail, str) else None
    problem = ApiProblem(error.status_code, detail or HTTPStatus(error.status_code).phrase)
    problem.headers = dict(error.headers or {})
    return problem_response(problem)


async def _invalid_parameters(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        FieldError(".".join(str(part) for part in detail["loc"]), str(detail["msg"]))
        for detail in error.errors()
    ]
    return problem_response(ApiProblem(422, "invalid parameters", errors=errors))


async def _database_down(_request: Request, _error: Exception) -> JSONResponse:
    log.warning("database unavailable: answered 503")
    return problem_response(unavailable("database"))


async def _broker_down(_request: Request, _error: Exception) -> JSONResponse:
    log.warning("broker unavailable: answered 503")
    return problem_response(unavailable("broker"))


def install(app: FastAPI) -> None:
    """Answer every error of `app` with a problem."""
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_parameters)
    app.add_exception_handler(DatabaseUnavailable, _database_down)
    app.add_exception_handler(redis.ConnectionError, _broker_down)
    app.add_exception_handler(redis.TimeoutError, _broker_down)
