"""Deployment defaults of issue 17: the image refuses the example passwords, the app connects
to PostgreSQL as a role that can change rows but no table, worker metrics listen on this host
only unless opened, and Flower's /metrics asks for its basic auth. Each runs natively: the
entry point script, the init SQL against the local PostgreSQL, a real worker, a real Flower."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from dialq.api import enqueue_call
from dialq.config import Settings
from dialq.ops.local_redis import free_port
from tests.servers import PG_ADMIN_URL, missing_server
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
DIALQ_SERVICES = ("migrate", "sandbox", "worker", "beat", "flower", "api")
EXAMPLE_PASSWORDS = ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "POSTGRES_APP_PASSWORD")


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The worker and Flower tests here read no table: one database is enough."""
    return sqlite_url


def _compose_config(tmp_path: Path, env_text: str) -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_server("docker-compose")
    for name in ("docker-compose.yml", "Dockerfile"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    (tmp_path / ".env").write_text(env_text)
    done = subprocess.run(
        [str(binary), "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def _own_passwords(text: str) -> str:
    """.env.example with every change-me example replaced, as a deployer should."""
    return re.sub(r"change-me-[a-z-]+", lambda _: uuid.uuid4().hex, text)


def _entrypoint(env: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    native = {k: v for k, v in os.environ.items() if not k.startswith(("DIALQ_", "FLOWER_"))}
    native.update({key: str(value) for key, value in env.items()})
    native["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{native.get('PATH', '')}"
    return subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), *args], env=native, capture_output=True, text=True, timeout=60
    )


def test_every_example_password_is_one_the_entrypoint_refuses() -> None:
    example = dict(
        re.findall(r"^([A-Z_]+)=(.*)$", (ROOT / ".env.example").read_text(), flags=re.MULTILINE)
    )
    for name in (*EXAMPLE_PASSWORDS, "FLOWER_BASIC_AUTH"):
        assert "change-me" in example[name], name


def test_each_dialq_container_refuses_to_start_with_the_example_passwords(tmp_path: Path) -> None:
    # given compose resolved with .env.example copied as it is to .env
    compose = _compose_config(tmp_path, (ROOT / ".env.example").read_text())
    for name in DIALQ_SERVICES:
        # when the image's entry point starts the service's environment
        done = _entrypoint(compose["services"][name]["environment"], "--help")
        # then it exits with EX_CONFIG naming each example password, and dialq never ran
        assert done.returncode == 78, (name, done.stdout, done.stderr)
        for variable in (*EXAMPLE_PASSWORDS, "FLOWER_BASIC_AUTH"):
            assert variable in done.stderr, (name, variable)
        assert done.stdout == "", name
        assert "change-me" not in done.stderr  # names the variables, never prints a value


def test_the_entrypoint_runs_dialq_once_every_password_is_changed(tmp_path: Path) -> None:
    # given compose resolved with passwords of the deployer's own
    compose = _compose_config(tmp_path, _own_passwords((ROOT / ".env.example").read_text()))
    # when the entry point starts the worker's environment with --help
    done = _entrypoint(compose["services"]["worker"]["environment"], "--help")
    # then dialq itself answers
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


def test_compose_connects_as_the_app_role_and_migrates_as_the_owner(tmp_path: Path) -> None:
    compose = _compose_config(tmp_path, (ROOT / ".env.example").read_text())
    services = compose["services"]
    owner = "postgresql+psycopg://dialq:change-me-postgres@postgres:5432/dialq"
    app = "postgresql+psycopg://dialq_app:change-me-postgres-app@postgres:5432/dialq"
    assert services["migrate"]["environment"]["DIALQ_DATABASE_URL"] == owner
    for name in ("worker", "beat", "api"):
        assert services[name]["environment"]["DIALQ_DATABASE_URL"] == app, name
        assert services[name]["environment"]["DIALQ_AUTO_MIGRATE"] == "false", name
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_APP_PASSWORD"] == "change-me-postgres-app"
    mounts = [str(volume) for volume in postgres["volumes"]]
    assert any("/docker-entrypoint-initdb.d/" in mount for mount in mounts), mounts
    assert any("/etc/dialq/postgres-init.sql" in mount for mount in mounts), mounts
    # the worker's metrics are reached over the compose network, published on no host port
    assert services["worker"]["environment"]["DIALQ_METRICS_ADDR"] == "0.0.0.0"
    assert "ports" not in services["worker"]


def test_dot_env_is_ignored_by_git() -> None:
    done = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True, timeout=10
    )
    assert done.returncode == 0


# -- the app role, made by deploy/postgres-init.sh against the local PostgreSQL --------------


@pytest.fixture
def private_cluster_names() -> Iterator[dict[str, str]]:
    """A database and two roles of this test's own (owner, app), dropped afterwards."""
    import psycopg

    suffix = uuid.uuid4().hex[:10]
    names = {"db": f"dialq_init_{suffix}", "owner": f"dialq_own_{suffix}"}
    names["app"] = f"dialq_app_{suffix}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        missing_server(f"PostgreSQL at {PG_ADMIN_URL}")
        raise
    with admin:
        # Like compose's POSTGRES_USER, the owner of the database, but no superuser: the
        # script needs no more than owning the database and making roles.
        admin.execute(f'CREATE ROLE "{names["owner"]}" LOGIN CREATEROLE')
        admin.execute(f'CREATE DATABASE "{names["db"]}" OWNER "{names["owner"]}"')
        try:
            yield names
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{names["db"]}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{names["app"]}"')
            admin.execute(f'DROP ROLE IF EXISTS "{names["owner"]}"')


def _url(user: str, password: str | None, db: str) -> str:
    host = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    secret = f":{quote(password, safe='')}" if password else ""
    return f"postgresql+psycopg://{user}{secret}@{host}/{db}"


def test_the_app_role_changes_rows_but_no_table_and_the_owner_migrates(
    private_cluster_names: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    import psycopg
    from psycopg import errors
    from psycopg.conninfo import make_conninfo

    names = private_cluster_names
    password = "app pass 'with' quotes"  # psql quotes it; the SQL never splices it raw
    # given the init script run as the postgres image runs it, with the role renamed for this
    # test (roles are cluster-wide) and the SQL read from the repository, not /etc/dialq
    sql = (ROOT / "deploy" / "postgres-init.sql").read_text().replace("dialq_app", names["app"])
    (tmp_path / "init.sql").write_text(sql)
    host, port = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0].split(":")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DIALQ_", "PG"))},
        "PGHOST": host,
        "PGPORT": port,
        "POSTGRES_USER": names["owner"],
        "POSTGRES_DB": names["db"],
        "POSTGRES_APP_PASSWORD": password,
        "POSTGRES_INIT_SQL": str(tmp_path / "init.sql"),
    }
    init = ["/bin/sh", str(ROOT / "deploy" / "postgres-init.sh")]
    done = subprocess.run(init, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "quotes" not in done.stdout + done.stderr  # the password is never printed
    # and run again (repairing grants on an existing database) it still succeeds
    again = subprocess.run(init, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr

    # when the owner migrates, as the compose `migrate` job does
    owner_env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
    owner_env["DIALQ_DATABASE_URL"] = _url(names["owner"], None, names["db"])
    dialq = str(Path(sys.executable).parent / "dialq")
    migrated = subprocess.run(
        [dialq, "db", "upgrade"], env=owner_env, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr

    # then dialq, connected as the app role, records a call (rows, sequences)
    app_url = _url(names["app"], password, names["db"])
    settings = Settings(database_url=app_url, broker_url=redis_url, auto_migrate=False)
    handle = enqueue_call({"phone_number": "+14155550123"}, settings=settings)
    # and the app role can neither create, alter, drop nor empty a table
    refused = (
        "CREATE TABLE stolen (x int)",
        "ALTER TABLE calls ADD COLUMN x int",
        "DROP TABLE calls",
        "TRUNCATE calls",
        f'CREATE ROLE "{names["app"]}_2"',
    )
    app_conninfo = make_conninfo(
        host=host, port=port, user=names["app"], dbname=names["db"], password=password
    )
    with psycopg.connect(app_conninfo, autocommit=True) as app:
        row = app.execute("SELECT status FROM calls WHERE id = %s", (handle.id,)).fetchone()
        assert row == ("queued",)
        for statement in refused:
            with pytest.raises(errors.InsufficientPrivilege):
                app.execute(statement)
    # and it logs in with a password (the local server trusts 127.0.0.1, compose does not)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        role = admin.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolpassword IS NOT NULL"
            " FROM pg_authid WHERE rolname = %s",
            (names["app"],),
        ).fetchone()
    assert role == (True, False, False, True)


# -- metrics: worker on 127.0.0.1 unless opened; Flower's behind its basic auth ---------------


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _wait_until_accepts(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not _accepts("127.0.0.1", port):
        assert time.monotonic() < deadline, f"no metrics on 127.0.0.1:{port}"
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("addr", "reached_elsewhere"), [(None, False), ("0.0.0.0", True)], ids=["default", "opened"]
)
def test_worker_metrics_listen_on_this_host_only_unless_opened(
    stack: Stack, addr: str | None, reached_elsewhere: bool
) -> None:
    # given a worker serving metrics, with DIALQ_METRICS_ADDR unset or 0.0.0.0
    port = free_port()
    stack.env["DIALQ_METRICS_PORT"] = str(port)
    if addr is not None:
        stack.env["DIALQ_METRICS_ADDR"] = addr
    stack.start_worker(concurrency=1)
    # when it listens
    _wait_until_accepts(port)
    # then another address of this machine (127.0.0.2 stands for any interface but
    # 127.0.0.1) reaches it only when opened
    assert _accepts("127.0.0.2", port) is reached_elsewhere


def _get(url: str, credentials: str | None = None) -> tuple[int, str]:
    headers = {}
    if credentials is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  (127.0.0.1 only)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), ""


def test_flower_metrics_ask_for_basic_auth_and_healthcheck_stays_open(
    redis_url: str, tmp_path: Path
) -> None:
    # given Flower as compose runs it (dialq flower, basic auth, read-only)
    port = free_port()
    credentials = "ops:flower-pass"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIALQ_", "FLOWER_"))}
    env.update(
        DIALQ_BROKER_URL=redis_url, FLOWER_BASIC_AUTH=credentials, FLOWER_ADDRESS="127.0.0.1"
    )
    dialq = str(Path(sys.executable).parent / "dialq")
    command = [dialq, "flower", f"--port={port}", "--read_only", f"--db={tmp_path / 'f.db'}"]
    log = tmp_path / "flower.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _accepts("127.0.0.1", port) or _get(f"{base}/healthcheck")[0] != 200:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        # when /metrics is asked for without, with wrong and with the right credentials
        anonymous = _get(f"{base}/metrics")
        wrong = _get(f"{base}/metrics", "ops:guess")
        right = _get(f"{base}/metrics", credentials)
        # then only the right ones get the metrics; the healthcheck needs none
        assert anonymous[0] == 401
        assert wrong[0] == 401
        assert right[0] == 200
        assert "flower_" in right[1]
        assert _get(f"{base}/healthcheck")[0] == 200
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
