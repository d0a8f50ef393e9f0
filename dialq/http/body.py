"""A request body read within a size limit and parsed as one JSON object."""

from __future__ import annotations

import json
from typing import Any, Final

from fastapi import Request

from dialq.http.problems import ApiProblem
from dialq.validation.errors import WHOLE_REQUEST, FieldError

# A CallRequest at every field's maximum is under 16 KiB; four times that is plenty.
MAX_BODY_BYTES: Final = 64 * 1024


def _too_large() -> ApiProblem:
    return ApiProblem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")


async def json_object(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object; 413 past `limit` bytes (read no further), 422 if not one."""
    return parse_object(await read_body(request, limit))


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body's bytes; 413 past `limit` bytes, having read no further."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def parse_object(body: bytes) -> dict[str, Any]:
    """The body parsed as one JSON object; 422 if it is not one."""
    try:
        data = json.loads(body)
    except ValueError:  # not UTF-8, or not JSON
        data = None
    if not isinstance(data, dict):
        raise ApiProblem(
            422,
            "the body must be a JSON object",
            errors=[FieldError(WHOLE_REQUEST, "must be a JSON object")],
        )
    return data
