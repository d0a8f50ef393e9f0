"""SQL parameters never reach an error's text: not the store's, not SQLAlchemy's it wraps."""

from __future__ import annotations

import traceback

import pytest
from sqlalchemy import text

from dialq.store import Conflict, Database

NUMBER = "+14155550177"
EMAIL = "jane.doe@example.com"
CALLBACK_TOKEN = "cb-token-Zq81"


def full_text(error: BaseException) -> str:
    """What Flower and a log show of an error: the whole chained traceback."""
    return "".join(traceback.format_exception(error))


def assert_no_parameter_in(error: BaseException) -> None:
    shown = full_text(error)
    for value in (NUMBER, EMAIL, CALLBACK_TOKEN):
        assert value not in shown, shown


def test_a_failed_statement_s_traceback_shows_no_parameter(database_url: str) -> None:
    # given a database, when a statement carrying personal data fails
    db = Database(database_url)
    try:
        # (SQLite calls it unavailable; PostgreSQL's error passes through as SQLAlchemy's)
        with (
            pytest.raises(Exception, match=r"unavailable|no_such_table") as caught,
            db.sessions() as session,
        ):
            session.execute(
                text("SELECT :number, :email, :url FROM no_such_table"),
                {"number": NUMBER, "email": EMAIL, "url": f"https://x/cb?t={CALLBACK_TOKEN}"},
            )
        # then neither the store's error nor SQLAlchemy's under it quotes the values
        assert_no_parameter_in(caught.value)
        assert "hidden due to hide_parameters" in full_text(caught.value)
    finally:
        db.dispose()


def test_a_conflicting_write_s_traceback_shows_no_parameter(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.transaction() as session:
            session.execute(text("DROP TABLE IF EXISTS security_probe"))
            session.execute(text("CREATE TABLE security_probe (v VARCHAR(200) PRIMARY KEY)"))
            session.execute(text("INSERT INTO security_probe VALUES (:v)"), {"v": NUMBER})
        # when the same value is written again and breaks the key
        with pytest.raises(Conflict) as caught, db.transaction() as session:
            session.execute(text("INSERT INTO security_probe VALUES (:v)"), {"v": NUMBER})
        # then the traceback does not show it (a unique-key message from PostgreSQL may quote
        # the key itself in its DETAIL line, which is not SQLAlchemy's parameter list)
        shown = full_text(caught.value)
        assert f"'{NUMBER}'" not in shown.split("DETAIL")[0]
        assert "hidden due to hide_parameters" in shown
    finally:
        with db.transaction() as session:
            session.execute(text("DROP TABLE IF EXISTS security_probe"))
        db.dispose()


def test_every_engine_the_store_makes_hides_parameters(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert db.engine.hide_parameters is True
    finally:
        db.dispose()
