"""The error messages Symbl documents, word for word, and defaults for the rest."""

from __future__ import annotations

from http import HTTPStatus

BAD_REQUEST = "Bad Request! Please refer docs for correct input fields."
TOKEN_INVALID = "Token validation failed for provided token."  # noqa: S105  (a message)
CONVERSATION_NOT_FOUND = (
    "The conversation and/or it's metadata you asked could not be found, "
    "please check the input provided"
)
TOO_MANY_CALLS = (
    "Maximum number of concurrent jobs reached. Please wait for some requests to complete."
)
SERVER_ERROR = "Something went wrong! Please contact support@symbl.ai"
BAD_CREDENTIALS = "Invalid appId or appSecret."
SUMMARY_NOT_READY = "Call the Summary API after the conversation has ended."

_BY_STATUS = {
    400: BAD_REQUEST,
    401: TOKEN_INVALID,
    404: CONVERSATION_NOT_FOUND,
    429: TOO_MANY_CALLS,
    500: SERVER_ERROR,
}


def default_message(status: int) -> str:
    """What a scripted fault says when its rule gives no body."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
