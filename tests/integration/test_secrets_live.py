"""No secret and no phone number in what a running system shows to whoever can reach the broker
or Flower: a worker on a password-protected Redis and a PostgreSQL URL with a password, asked
through `inspect().conf()` and `.stats()`, and a real Flower (basic auth), through
`/api/workers?refresh=1` and its HTML pages, after a call to a known number was placed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from dialq.api import enqueue_call
from dialq.ops.local_redis import PrivateRedis, RedisNotFound
from dialq.sandbox import SandboxConfig, start_sandbox
from dialq.worker import create_app
from tests.integration.test_secrets import (
    APP_SECRET,
    FLOWER_PASSWORD,
    NUMBER,
    WEBHOOK_SECRET,
    Process,
    start_flower,
    until,
)
from tests.servers import missing_server, private_pg_schema
from tests.stack import APP_ID, Stack, running_stack, stack_env

BROKER_PASSWORD = "broker-pw-Tz8Kc3Wq1"
DB_PASSWORD = "db-pw-Hn4Lx7Vd2"
SECRETS = {
    "app secret": APP_SECRET,
    "webhook secret": WEBHOOK_SECRET,
    "broker password": BROKER_PASSWORD,
    "database password": DB_PASSWORD,
    "flower password": FLOWER_PASSWORD,
}
# Only the last 4 digits of the number may show (masked); any longer part of it is a leak.
NUMBER_PARTS = ("4155550163", "415555", "5550163", "(415)", "415-555", "415 555")


def leaks_in(text: str) -> list[str]:
    found = [name for name, value in SECRETS.items() if value in text]
    squeezed = re.sub(r"[\s().\-/]", "", text)
    if any(part in text for part in NUMBER_PARTS) or "4155550163" in squeezed:
        found.append("phone number")
    return found


@pytest.fixture
def password_redis() -> Iterator[str]:
    """A redis-server of this test's own that only answers with a password."""
    try:
        server = PrivateRedis().start()
    except RedisNotFound:
        missing_server("redis-server")
        raise
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port)
    client.config_set("requirepass", BROKER_PASSWORD)
    client.close()
    yield f"redis://:{BROKER_PASSWORD}@127.0.0.1:{server.port}/0"
    server.stop()


@pytest.fixture
def password_pg() -> Iterator[str]:
    """A schema of its own, used through a role logging in with a password (the local server
    trusts 127.0.0.1, so the password is carried, sent, and not checked)."""
    import psycopg

    from tests.servers import PG_ADMIN_URL

    role = f"dialq_sweep_{uuid.uuid4().hex[:8]}"
    database = PG_ADMIN_URL.rsplit("/", 1)[1]
    with private_pg_schema() as admin_url:
        schema = admin_url.rsplit("%3D", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{DB_PASSWORD}'")
            admin.execute(f'GRANT ALL ON SCHEMA "{schema}" TO {role}')
            admin.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO {role}')
        host = PG_ADMIN_URL.split("@", 1)[1]
        try:
            yield (
                f"postgresql+psycopg://{role}:{quote(DB_PASSWORD, safe='')}@{host}"
                f"?options=-csearch_path%3D{schema}"
            )
        finally:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f"DROP OWNED BY {role} CASCADE")
                admin.execute(f'REVOKE ALL ON DATABASE "{database}" FROM {role}')
                admin.execute(f"DROP ROLE {role}")


@pytest.fixture
def live(password_redis: str, password_pg: str, tmp_path: Path) -> Iterator[Stack]:
    sandbox = start_sandbox(
        SandboxConfig(app_id=APP_ID, app_secret=APP_SECRET, max_concurrent=50, call_seconds=1.0),
        host="127.0.0.1",
        port=0,
    )
    env = stack_env(password_redis, password_pg, sandbox.url, tmp_path)
    env |= {"DIALQ_SYMBL_APP_SECRET": APP_SECRET, "DIALQ_WEBHOOK_SECRET": WEBHOOK_SECRET}
    try:
        with running_stack(env, sandbox, tmp_path) as stack:
            yield stack
    finally:
        sandbox.stop()


@pytest.fixture
def processes(live: Stack) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def test_inspect_and_flower_show_no_secret_and_no_number_of_a_live_worker(
    live: Stack, processes: list[Process]
) -> None:
    stack = live
    # given a worker and Flower on a password-protected Redis and a PostgreSQL URL with a
    # password, and a call to a known number that has completed
    stack.start_worker(concurrency=2)
    flower = start_flower(stack, processes)
    call_id = enqueue_call({"phone_number": NUMBER}, settings=stack.settings).id
    stack.wait_for(call_id, {"completed"}, timeout_s=60)
    # when the broker's clients ask the worker for its configuration and statistics
    app = create_app(stack.settings)
    try:
        inspect = app.control.inspect(timeout=5)
        conf, stats = inspect.conf(with_defaults=True), inspect.stats()
    finally:
        app.close()
    assert conf, "the worker did not answer inspect conf"
    assert stats, "the worker did not answer inspect stats"
    places = {"inspect conf": json.dumps(conf, default=str)}
    places["inspect stats"] = json.dumps(stats, default=str)
    # and Flower is read: its workers API (refreshed from the workers) and its pages
    until(lambda: flower.get("/api/workers?refresh=1")[0] == 200, "flower lists workers")
    status, workers = flower.get("/api/workers?refresh=1")
    places["flower /api/workers?refresh=1"] = workers
    names = list(json.loads(workers))
    assert names, workers
    pages = ["/", "/workers", "/tasks", "/broker", "/api/tasks"]
    pages += [f"/worker/{quote(name)}" for name in names]
    for path in pages:
        status, body = flower.get(path)
        assert status == 200, (path, body[:300])
        places[f"flower {path}"] = body
    places["worker log"] = stack.worker_logs()
    places |= {f"{p.log.stem} log": p.log.read_text(errors="replace") for p in processes}
    # then none of them holds a secret or the number
    leaks = {place: found for place, text in places.items() if (found := leaks_in(text))}
    assert leaks == {}, leaks
    # and what they show is the real thing: the worker's broker and database URLs, masked
    # (user, host and port kept), and the call's task
    role = stack.env["DIALQ_DATABASE_URL"].split("//", 1)[1].split(":", 1)[0]
    broker_host = stack.env["DIALQ_BROKER_URL"].rsplit("@", 1)[1]
    for place in ("inspect conf", "flower /api/workers?refresh=1"):
        assert f":***@{broker_host}" in places[place], place
        assert f"//{role}:***@" in places[place], place
    assert broker_host in places["flower /broker"]
    assert call_id in places["flower /api/tasks"]
