"""What intake accepts but says something about, whichever way a call comes in."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

import dialq
from tests.stack import Stack


def test_a_callback_url_without_a_webhook_secret_is_accepted_with_a_warning(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # given settings with no webhook secret
    settings = stack.settings.model_copy(update={"webhook_secret": SecretStr("")})
    request = {"phone_number": "+14155550123", "callback_url": "https://hooks.example.com/x"}
    # when the Python API places a call with a callback URL
    with caplog.at_level(logging.WARNING, logger="dialq.calls"):
        handle = dialq.enqueue_call(request, settings=settings)
    # then the call is recorded, and the log says no webhook will be sent, and why
    assert stack.call(handle.id)["status"] == "queued"
    assert any("DIALQ_WEBHOOK_SECRET is unset" in r.getMessage() for r in caplog.records)
