"""Settings: environment over dialq.toml over defaults; secrets stay hidden."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dialq.config import Settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in list(os.environ):
        if key.startswith("DIALQ_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dialq_toml_is_read_and_the_environment_wins_over_it(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a dialq.toml and one variable in the environment
    (clean_env / "dialq.toml").write_text(
        'broker_url = "redis://from-toml:6379/0"\nmax_concurrent_calls = 7\n'
    )
    monkeypatch.setenv("DIALQ_MAX_CONCURRENT_CALLS", "9")
    # when settings are read
    settings = Settings()
    # then the file filled what the environment did not say
    assert settings.broker_url == "redis://from-toml:6379/0"
    assert settings.max_concurrent_calls == 9
    assert settings.account("default").max_concurrent_calls == 9


def test_more_accounts_come_from_json_and_the_default_account_from_flat_variables(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIALQ_SYMBL_APP_ID", "main-app")
    monkeypatch.setenv(
        "DIALQ_ACCOUNTS", '{"sales": {"app_id": "s", "app_secret": "x", "max_concurrent_calls": 2}}'
    )
    settings = Settings()
    assert sorted(settings.accounts) == ["default", "sales"]
    assert settings.account("default").app_id == "main-app"
    assert settings.account("sales").max_concurrent_calls == 2
    with pytest.raises(KeyError, match="unknown account 'nope'"):
        settings.account("nope")


def test_the_app_secret_never_shows_in_the_settings_repr(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIALQ_SYMBL_APP_SECRET", "s3cr3t-value")
    settings = Settings()
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in settings.model_dump_json()
    assert settings.symbl_app_secret.get_secret_value() == "s3cr3t-value"


def test_the_default_database_is_a_sqlite_file_in_the_data_dir(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIALQ_DATA_DIR", str(clean_env / "data"))
    assert Settings().database_url_resolved == f"sqlite:///{clean_env / 'data' / 'dialq.db'}"


def test_a_dialing_stale_time_shorter_than_the_requests_it_guards_is_refused(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a read timeout of 60 s, so a token request and a start request take up to 130 s
    monkeypatch.setenv("DIALQ_HTTP_READ_TIMEOUT_S", "60")
    monkeypatch.setenv("DIALQ_DIALING_STALE_S", "120")
    # when settings are read, then the rule is named: the watchdog would call live dials unknown
    with pytest.raises(ValueError, match=r"dialing_stale_s: must be at least .* \(130 s\)"):
        Settings()
    # and a long enough one is accepted
    monkeypatch.setenv("DIALQ_DIALING_STALE_S", "130")
    assert Settings().dialing_stale_s == 130


def test_the_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    undocumented = [
        f"DIALQ_{name.upper()}"
        for name in Settings.model_fields
        if not re.search(rf"\bDIALQ_{name.upper()}\b", readme)
    ]
    assert undocumented == []
