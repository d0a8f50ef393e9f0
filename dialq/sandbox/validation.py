"""Request-body checks with Joi-style messages that name the offending field path.

Symbl's server messages are undocumented; its one known sample is Joi's
(``"description" is not allowed to be empty``), so every message here starts with the quoted
path of the field, which lets a client's error report point at what it sent wrong.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from dialq.sandbox.typecheck import (
    Invalid,
    is_number,
    optional_array,
    optional_number,
    optional_object,
    optional_string,
    require_object,
    require_one_of,
    require_string,
)

SUPPORTED_LANGUAGES = (
    "en-US", "en-GB", "en-AU", "en-IE", "en-IN", "en-ZA", "ru-RU", "fr-CA", "fr-FR", "de-DE",
    "it-IT", "nl-NL", "ja-JP", "es-US", "es-ES", "ar-SA", "hi-IN", "pt-BR", "pt-PT", "fa-IR",
)  # fmt: skip
E164 = re.compile(r"\+?[1-9]\d{7,14}")
# NANP: country code 1, then an area code and an exchange that each start with 2-9.
NANP = re.compile(r"\+?1[2-9]\d{2}[2-9]\d{6}")
DTMF = re.compile(r"[0-9*#,]+")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
EVENT_TYPES = ("started_speaking", "stopped_speaking", "joined", "left", "stopped")
INTENTS = ("answering_machine", "interested", "not_interested", "do_not_call")
USER_STATUSES = ("joined", "not_joined", "left")
USER_MODES = ("native", "external", "custom")
# Only the shape of a BCP-47 tag (a language, then script, region or variant subtags): the
# swagger model lists no languages for endpoint.language, so en-US, zh-Hant-TW and es-419 pass.
BCP47 = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")
# Real UTC offsets run from -12:00 to +14:00. Either sign is accepted: the swagger example
# (-480 for US/Pacific) counts the opposite way from JavaScript's getTimezoneOffset().
MAX_OFFSET_MINUTES = 14 * 60


def validate_token_request(body: Any) -> dict[str, Any]:
    request = require_object(body, "value")
    require_one_of(request.get("type"), "type", ("application",))
    require_string(request.get("appId"), "appId")
    require_string(request.get("appSecret"), "appSecret")
    return request


def validate_connect(body: Any, nanp_only: bool) -> dict[str, Any]:
    request = require_object(body, "value")
    operation = require_one_of(request.get("operation"), "operation", ("start", "stop"))
    if operation == "stop":
        require_string(request.get("connectionId"), "connectionId")
    else:
        _validate_start(request, nanp_only)
    return request


def validate_event(body: Any) -> dict[str, Any]:
    event = require_object(body, "value")
    require_one_of(event.get("topic"), "topic", ("speaker",))
    kind = require_one_of(event.get("type"), "type", EVENT_TYPES)
    # The JS SDK's "stopped" event carries no user; every other speaker event needs one.
    user = optional_object(event.get("user"), "user") if kind == "stopped" else None
    if kind != "stopped":
        user = require_object(event.get("user"), "user")
    if user is not None:
        require_string(user.get("userId"), "user.userId")
    _require_iso_time(event.get("timestamp"), "timestamp")
    return event


def _validate_start(request: dict[str, Any], nanp_only: bool) -> None:
    _validate_endpoint(require_object(request.get("endpoint"), "endpoint"), nanp_only)
    _validate_actions(request.get("actions"))
    _validate_intents(request.get("intents"))
    _validate_languages(request.get("languages"))
    if request.get("timezone") is not None:
        _require_time_zone(request["timezone"], "timezone")
    for name in ("endpointWebhookUrl", "callbackUrl"):
        _validate_url(request.get(name), name)
    _validate_data(request.get("data"))


def _validate_endpoint(endpoint: dict[str, Any], nanp_only: bool) -> None:
    kind = require_one_of(endpoint.get("type"), "endpoint.type", ("pstn", "sip"))
    if kind == "pstn":
        _validate_phone_number(endpoint.get("phoneNumber"), nanp_only)
    else:
        uri = require_string(endpoint.get("uri"), "endpoint.uri")
        if not uri.startswith(("sip:", "sips:")):
            raise Invalid('"endpoint.uri" must be a SIP URI starting with sip: or sips:')
    dtmf = optional_string(endpoint.get("dtmf"), "endpoint.dtmf")
    if dtmf is not None and not DTMF.fullmatch(dtmf):
        raise Invalid('"endpoint.dtmf" must contain only the digits 0-9, *, # and commas')
    _validate_audio_config(endpoint.get("audioConfig"))
    optional_string(endpoint.get("providerName"), "endpoint.providerName")
    language = optional_string(endpoint.get("language"), "endpoint.language")
    if language is not None and not BCP47.fullmatch(language):
        raise Invalid('"endpoint.language" must be a BCP-47 language tag, e.g. en-US')
    offset = optional_number(endpoint.get("timezoneOffset"), "endpoint.timezoneOffset")
    if offset is not None and abs(offset) > MAX_OFFSET_MINUTES:
        raise Invalid('"endpoint.timezoneOffset" must be minutes from UTC, from -840 to 840')
    idle = optional_number(endpoint.get("idleTimeout"), "endpoint.idleTimeout")
    # Seconds of silence before Symbl leaves; -1, the default, means never.
    if idle is not None and idle < 0 and idle != -1:
        raise Invalid('"endpoint.idleTimeout" must be -1 (no timeout) or seconds >= 0')


def _validate_phone_number(value: Any, nanp_only: bool) -> None:
    number = require_string(value, "endpoint.phoneNumber")
    if not E164.fullmatch(number):
        raise Invalid(
            '"endpoint.phoneNumber" must be an E.164 number without spaces or punctuation, '
            "e.g. 14082924837"
        )
    if nanp_only and not NANP.fullmatch(number):
        raise Invalid('"endpoint.phoneNumber" must be a US or Canada number: 1 and 10 digits')


def _validate_audio_config(value: Any) -> None:
    config = optional_object(value, "endpoint.audioConfig")
    if config is None:
        return
    optional_string(config.get("encoding"), "endpoint.audioConfig.encoding")
    for name in ("sampleRate", "payloadType"):
        optional_number(config.get(name), f"endpoint.audioConfig.{name}")
    size = config.get("sampleSize")
    # The Python SDK sends "16" as a string; the docs also show the number 16.
    if size is not None and not (is_number(size) or (isinstance(size, str) and size.isdigit())):
        raise Invalid('"endpoint.audioConfig.sampleSize" must be a number')


def _validate_actions(value: Any) -> None:
    # The Python SDK sends an empty object when there are no actions.
    if value is None or value == {}:
        return
    if not isinstance(value, list):
        raise Invalid('"actions" must be an array')
    for index, item in enumerate(value):
        path = f"actions[{index}]"
        action = require_object(item, path)
        require_one_of(action.get("invokeOn"), f"{path}.invokeOn", ("start", "stop"))
        require_one_of(action.get("name"), f"{path}.name", ("sendSummaryEmail",))
        parameters = require_object(action.get("parameters"), f"{path}.parameters")
        emails = parameters.get("emails")
        if emails is None:
            raise Invalid(f'"{path}.parameters.emails" is required')
        if not isinstance(emails, list):
            raise Invalid(f'"{path}.parameters.emails" must be an array')
        if not emails:
            raise Invalid(f'"{path}.parameters.emails" must contain at least 1 items')
        for position, email in enumerate(emails):
            email_path = f"{path}.parameters.emails[{position}]"
            if not EMAIL.fullmatch(require_string(email, email_path)):
                raise Invalid(f'"{email_path}" must be a valid email')


def _validate_intents(value: Any) -> None:
    for index, item in enumerate(optional_array(value, "intents")):
        path = f"intents[{index}]"
        intent = require_object(item, path)
        require_one_of(intent.get("intent"), f"{path}.intent", INTENTS)
        optional_number(intent.get("silenceTimeout"), f"{path}.silenceTimeout")


def _validate_languages(value: Any) -> None:
    for index, item in enumerate(optional_array(value, "languages")):
        # Documented as strings; the swagger model and the JS SDK send {"code": ...}.
        if isinstance(item, dict):
            require_one_of(item.get("code"), f"languages[{index}].code", SUPPORTED_LANGUAGES)
        else:
            require_one_of(item, f"languages[{index}]", SUPPORTED_LANGUAGES)


def _validate_data(value: Any) -> None:
    data = optional_object(value, "data")
    session = optional_object(data.get("session"), "data.session") if data else None
    if session is None:
        return
    optional_string(session.get("name"), "data.session.name")
    _validate_users(session.get("users"))
    location = optional_object(session.get("location"), "data.session.location")
    zone = (
        optional_object(location.get("timeZone"), "data.session.location.timeZone")
        if location
        else None
    )
    if zone is not None and zone.get("name") is not None:
        _require_time_zone(zone["name"], "data.session.location.timeZone.name")


def _validate_users(value: Any) -> None:
    for index, item in enumerate(optional_array(value, "data.session.users")):
        path = f"data.session.users[{index}]"
        entry = require_object(item, path)
        user = require_object(entry.get("user"), f"{path}.user")
        for name in ("name", "userId", "role"):
            optional_string(user.get(name), f"{path}.user.{name}")
        # The swagger SessionUser's enums; other keys a client adds are left alone.
        if entry.get("status") is not None:
            require_one_of(entry["status"], f"{path}.status", USER_STATUSES)
        if entry.get("mode") is not None:
            require_one_of(entry["mode"], f"{path}.mode", USER_MODES)


def _validate_url(value: Any, path: str) -> None:
    url = optional_string(value, path)
    if url is not None and not _is_web_url(url):
        raise Invalid(f'"{path}" must be an http or https URL')


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    has_space = any(c.isspace() for c in url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not has_space


def _require_time_zone(value: Any, path: str) -> None:
    name = require_string(value, path)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(f'"{path}" must be a valid IANA time zone name, e.g. US/Pacific') from None


def _require_iso_time(value: Any, path: str) -> None:
    text = require_string(value, path)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f'"{path}" must be an ISO-8601 date-time') from None
