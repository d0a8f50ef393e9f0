"""Request bodies for ``POST /v1/endpoint:connect`` (docs/symbl-api.md §3.1, §3.2, §3.5).

Pure functions: a validated CallRequest in, the exact JSON body out. Optional keys are left out
rather than sent as null, because the reference documents them as optional, not nullable.
"""

from __future__ import annotations

from dialq.calls.request import CallRequest

# The only action the Telephony API supports (docs/symbl-api.md §3.1).
SEND_SUMMARY_EMAIL = "sendSummaryEmail"


def start_body(req: CallRequest) -> dict[str, object]:
    """The body that starts a call: endpoint, then actions, data, languages, timezone if set."""
    body: dict[str, object] = {"operation": "start", "endpoint": endpoint(req)}
    if req.summary_emails:
        body["actions"] = [
            {
                "invokeOn": "stop",
                "name": SEND_SUMMARY_EMAIL,
                "parameters": {"emails": list(req.summary_emails)},
            }
        ]
    if req.session_name is not None:
        body["data"] = {"session": {"name": req.session_name}}
    if req.languages:
        body["languages"] = list(req.languages)
    if req.timezone is not None:
        body["timezone"] = req.timezone
    return body


def endpoint(req: CallRequest) -> dict[str, object]:
    """The ``endpoint`` object: PSTN with the number, or SIP with the URI."""
    if req.phone_number is not None:
        number = api_phone_number(req.phone_number)
        pstn: dict[str, object] = {"type": "pstn", "phoneNumber": number}
        if req.dtmf is not None:
            pstn["dtmf"] = req.dtmf
        return pstn
    if req.sip_uri is not None:
        return {"type": "sip", "uri": req.sip_uri}
    raise ValueError("a CallRequest must have a phone_number or a sip_uri")


def api_phone_number(e164: str) -> str:
    """The number as the reference asks for it: E.164 digits without the leading '+'.

    Samples disagree (some send '+', docs/symbl-api.md §3.3); the reference wins.
    """
    return e164.removeprefix("+")


def stop_body(connection_id: str) -> dict[str, object]:
    """The body that stops the call identified by ``connection_id`` (docs/symbl-api.md §3.5)."""
    return {"operation": "stop", "connectionId": connection_id}
