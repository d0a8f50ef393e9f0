"""docker-compose.yml validated by `docker-compose config`, and the commands its services run
run natively: the same console script, arguments, environment and healthchecks, against the
tests' private Redis and a fresh database, with container-only hosts, ports and paths replaced
in plain sight (`_stand_ins`)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialq.config import Settings
from dialq.ops.local_redis import free_port
from dialq.validation.durations import parse_duration
from tests.servers import missing_server

ROOT = Path(__file__).resolve().parents[2]
DIALQ_SERVICES = ("migrate", "sandbox", "worker", "beat", "flower", "api")


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The file as docker-compose resolves it, with .env.example as the .env."""
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_server("docker-compose")
    project = tmp_path_factory.mktemp("compose")
    for name in ("docker-compose.yml", "Dockerfile"):
        shutil.copy(ROOT / name, project / name)
    shutil.copy(ROOT / ".env.example", project / ".env")
    done = subprocess.run(
        [str(binary), "config"], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def test_compose_runs_every_service_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "postgres", *DIALQ_SERVICES}
    for name, service in services.items():
        if name == "migrate":  # a one-shot job: its exit code is its health
            assert service["healthcheck"] in ({"disable": True}, {"test": ["NONE"]})
            assert service["restart"] == "no"
            continue
        assert service["healthcheck"]["test"], name
    for name in DIALQ_SERVICES:
        assert services[name]["image"] == "dialq:latest"
        assert services[name]["environment"]["DIALQ_SYMBL_APP_SECRET"]  # from the one .env
    for name in ("worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["environment"]["DIALQ_AUTO_MIGRATE"] == "false"
    assert set(compose["volumes"]) == {"redis-data", "pg-data", "beat-data"}


def test_redis_keeps_every_message_and_asks_for_a_password(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "--requirepass change-me-redis" in command
    broker = compose["services"]["worker"]["environment"]["DIALQ_BROKER_URL"]
    assert broker == "redis://:change-me-redis@redis:6379/0"
    assert compose["services"]["redis"]["volumes"][0].startswith("redis-data:/data")


def test_flower_is_read_only_behind_basic_auth(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert "--read_only" in flower["command"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "ops:change-me-flower"
    assert str(flower["ports"][0]).startswith("127.0.0.1:5555")  # not on every interface


def test_env_example_documents_every_dialq_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?(DIALQ_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
    expected = {f"DIALQ_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented == set(), "add these to .env.example"
    assert documented - expected == set(), "these are not settings"


# The image's entry point (Dockerfile: ENTRYPOINT ["dialq"]), from this environment.
DIALQ = Path(sys.executable).parent / "dialq"
LONG_RUNNING = ("sandbox", "worker", "beat", "flower", "api")
# uvicorn (the sandbox) re-raises SIGTERM once its graceful shutdown is done, so the status
# says what stopped it; as PID 1 in a container the kernel drops that re-raise and it exits 0.
CLEAN_EXITS = {"sandbox": {0, -signal.SIGTERM}, "api": {0, -signal.SIGTERM}}


@dataclass(frozen=True)
class StandIns:
    """What only exists in a container or on the compose network, and what replaces it here."""

    text: dict[str, str] = field(default_factory=dict)  # in the command and the healthcheck
    env: dict[str, str] = field(default_factory=dict)


def _stand_ins(name: str, port: int, tmp_path: Path) -> StandIns:
    # Fixed ports may be taken on this machine; a container listens on all of its interfaces
    # for the other services, a native process on loopback is enough.
    return {
        "sandbox": StandIns(
            text={"sandbox:8765": f"127.0.0.1:{port}", "0.0.0.0": "127.0.0.1", "8765": str(port)}
        ),
        "worker": StandIns(),
        # /var/lib/dialq/beat is the beat-data volume, made by the Dockerfile.
        "beat": StandIns(text={"/var/lib/dialq/beat": str(tmp_path)}),
        # Published on the host's 127.0.0.1 only; FLOWER_* variables are Flower's options.
        "flower": StandIns(text={"5555": str(port)}, env={"FLOWER_ADDRESS": "127.0.0.1"}),
        "api": StandIns(text={"0.0.0.0": "127.0.0.1", "8000": str(port)}),
    }[name]


@dataclass(frozen=True)
class Native:
    """A compose service as it runs on this machine: same arguments, same environment."""

    name: str
    command: list[str]
    healthcheck: list[str]
    healthcheck_timeout_s: float
    stop_grace_s: float
    env: dict[str, str]
    port: int
    log: Path


def _swap(text: str, stand_ins: dict[str, str]) -> str:
    text = text.replace("$$", "$")  # `config` prints compose's escape; Docker gets one $
    for container_only, here in stand_ins.items():
        text = text.replace(container_only, here)
    return text


def _healthcheck_argv(test: list[str]) -> list[str]:
    kind, *rest = test
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", rest[0]]
    assert kind == "CMD", test
    return rest


def _native_env(service: dict[str, Any], stand_ins: StandIns, **urls: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIALQ_", "FLOWER_"))}
    env.update({key: str(value) for key, value in service["environment"].items()})
    # Hosts of the compose network (redis:6379, postgres:5432) become the test's own servers;
    # only where compose sets them, so a service without a database still has none.
    for key, url in urls.items():
        if key in env:
            env[key] = url
    env.update(stand_ins.env)
    env.update(
        PYTHONUNBUFFERED="1",  # the image's ENV: log lines arrive as they are written
        HOSTNAME=socket.gethostname(),  # set by Docker; the worker's healthcheck names it
        PATH=f"{DIALQ.parent}{os.pathsep}{env.get('PATH', '')}",  # dialq, celery and python
    )
    return env


@pytest.fixture
def native(
    compose: dict[str, Any], redis_url: str, sqlite_url: str, tmp_path: Path
) -> Callable[[str], Native]:
    """Builds a service's native form; migrates first where compose waits for `migrate`."""

    def build(name: str) -> Native:
        service = compose["services"][name]
        port = free_port()
        stand_ins = _stand_ins(name, port, tmp_path)
        env = _native_env(
            service,
            stand_ins,
            DIALQ_BROKER_URL=redis_url,
            DIALQ_DATABASE_URL=sqlite_url,
            DIALQ_METRICS_PORT=str(free_port()),
        )
        env["DIALQ_DATA_DIR"] = str(tmp_path / "data")  # not the home directory of this machine
        if "migrate" in service.get("depends_on", {}):
            migrate = [str(arg) for arg in compose["services"]["migrate"]["command"]]
            done = _run([str(DIALQ), *migrate], env=env, timeout_s=60)
            assert done.returncode == 0, done.stdout + done.stderr
        return Native(
            name=name,
            command=[_swap(str(arg), stand_ins.text) for arg in service["command"]],
            healthcheck=_healthcheck_argv(
                [_swap(str(arg), stand_ins.text) for arg in service["healthcheck"]["test"]]
            ),
            healthcheck_timeout_s=parse_duration(service["healthcheck"]["timeout"]),
            stop_grace_s=parse_duration(service.get("stop_grace_period", "10s")),
            env=env,
            port=port,
            log=tmp_path / f"{name}.log",
        )

    return build


def _run(
    argv: list[str], env: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)


def _http_status(url: str, basic_auth: str | None = None) -> int | None:
    headers = {}
    if basic_auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(basic_auth.encode()).decode()
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  (http://127.0.0.1 only)
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def _is_ready(service: Native) -> bool:
    """What each service shows once it does its job."""
    log = service.log.read_text(errors="replace")
    local = f"http://127.0.0.1:{service.port}"
    if service.name == "sandbox":
        return _http_status(f"{local}/_sandbox/live") == 200
    if service.name == "worker":
        return " ready." in log
    if service.name == "beat":
        return "Sending due task" in log
    if service.name == "api":
        return _http_status(f"{local}/readyz") == 200
    return _http_status(f"{local}/", basic_auth=service.env["FLOWER_BASIC_AUTH"]) == 200


@contextmanager
def _started(service: Native, timeout_s: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    with service.log.open("wb") as sink:
        process = subprocess.Popen(
            [str(DIALQ), *service.command],
            env=service.env,
            cwd=service.log.parent,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not _is_ready(service):
            assert process.poll() is None, f"exited {process.returncode}: {_tail(service)}"
            assert time.monotonic() < deadline, f"not ready in {timeout_s}s: {_tail(service)}"
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:  # the test failed before it stopped the service
            process.kill()
            process.wait()


def _tail(service: Native) -> str:
    return service.log.read_text(errors="replace")[-3000:]


def test_the_migrate_command_upgrades_a_database_natively(
    compose: dict[str, Any], sqlite_url: str
) -> None:
    # given the migrate job's command and an empty database
    command = [str(arg) for arg in compose["services"]["migrate"]["command"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
    env["DIALQ_DATABASE_URL"] = sqlite_url
    # when the console script runs it
    done = _run([str(DIALQ), *command], env=env, timeout_s=60)
    # then it exits 0 with the schema at the newest migration
    assert done.returncode == 0, done.stderr
    assert "newest schema" in done.stdout


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_each_service_runs_natively_passes_its_healthcheck_and_stops_cleanly_on_sigterm(
    native: Callable[[str], Native], name: str
) -> None:
    # given the service's command, healthcheck and environment as compose resolves them, with
    # the stand-ins above for container-only hosts, ports and paths, and the healthcheck
    # failing while nothing runs (so it can tell)
    service = native(name)
    down = _run(service.healthcheck, env=service.env, timeout_s=service.healthcheck_timeout_s)
    assert down.returncode != 0, f"{name}'s healthcheck passes with nothing running"
    # when the console script starts it and it does its job
    with _started(service) as process:
        # then its healthcheck, run natively while it is up, passes
        up = _run(service.healthcheck, env=service.env, timeout_s=service.healthcheck_timeout_s)
        assert up.returncode == 0, up.stdout + up.stderr + _tail(service)
        # and SIGTERM (what `docker-compose stop` sends) ends it cleanly within its grace period
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=service.stop_grace_s)
        assert code in CLEAN_EXITS.get(name, {0}), _tail(service)
