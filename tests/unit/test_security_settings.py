"""No secret in what Celery shows of its config (`inspect conf`, Flower), nor in settings' text."""

from __future__ import annotations

import json

import pytest
from celery.utils.saferepr import saferepr
from celery.utils.serialization import jsonify
from celery.worker.control import _wanted_config_key

from dialq.config import Settings, mask_url
from dialq.worker import create_app

BROKER_PASSWORD = "broker-pw-Xk29"
DB_PASSWORD = "db-pw-Lm83"
APP_SECRET = "app-secret-Qz71"
SALES_SECRET = "sales-secret-Pw55"
WEBHOOK_SECRET = "whsec-Tn42"
CALLBACK_TOKEN = "cb-tok-Vr17"
SECRETS = (BROKER_PASSWORD, DB_PASSWORD, APP_SECRET, SALES_SECRET, WEBHOOK_SECRET, CALLBACK_TOKEN)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        # nothing listens on port 1: building the app must not connect
        broker_url=f"redis://:{BROKER_PASSWORD}@127.0.0.1:1/0",
        database_url=f"postgresql+psycopg://dialq:{DB_PASSWORD}@pg/dialq",
        symbl_app_secret=APP_SECRET,
        webhook_secret=WEBHOOK_SECRET,
        default_callback_url=f"https://hooks.example.com/in?token={CALLBACK_TOKEN}",
        accounts={"sales": {"app_id": "s", "app_secret": SALES_SECRET,
                            "base_url": f"https://u:{SALES_SECRET}@api.example.com"}},
    )  # fmt: skip


def test_settings_repr_and_str_mask_every_credential(settings: Settings) -> None:
    for text in (repr(settings), str(settings), repr(settings.account("sales"))):
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, text
    assert "redis://:***@127.0.0.1:1/0" in repr(settings)
    assert "postgresql+psycopg://dialq:***@pg/dialq" in repr(settings)


def test_inspect_conf_answers_without_a_secret(settings: Settings) -> None:
    # given the worker's app, with the settings in its config as tasks need them
    app = create_app(settings)
    assert app.conf.dialq_settings is settings
    # when Celery answers `inspect conf` (what the worker's control command returns, and what
    # Flower's /api/workers shows), then no secret is in it
    answer = jsonify(
        app.conf.table(with_defaults=False),
        keyfilter=_wanted_config_key,
        unknown_type_filter=saferepr,
    )
    text = json.dumps(answer)
    assert "dialq_settings" in text
    assert not [secret for secret in SECRETS if secret in text], text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:pw@h/0", "redis://user:***@h/0"),
        ("redis://h/0?password=pw&db=1", "redis://h/0?password=***&db=***"),
        ("https://x.example/cb?t=1", "https://x.example/cb?t=***"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("http://[::1:80/", "***"),
    ],
)
def test_mask_url_hides_passwords_and_query_values(url: str, shown: str) -> None:
    assert mask_url(url) == shown
