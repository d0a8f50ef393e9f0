"""docker-compose.yml validated by `docker-compose config`, and the commands its services run
tried natively (the same CLI, the same arguments)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialq.config import Settings
from tests.servers import missing_server

ROOT = Path(__file__).resolve().parents[2]
DIALQ_SERVICES = ("migrate", "sandbox", "worker", "beat", "flower")


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


def _dialq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialq.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_the_migrate_command_upgrades_a_database_natively(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
    env["DIALQ_DATABASE_URL"] = f"sqlite:///{tmp_path / 'dialq.db'}"
    done = _dialq("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


@pytest.mark.parametrize("service", ["sandbox", "worker", "beat", "flower"])
def test_each_service_command_is_accepted_by_the_cli(compose: dict[str, Any], service: str) -> None:
    # given the service's command exactly as compose runs it, asked for help
    command = [str(arg) for arg in compose["services"][service]["command"]]
    # when the CLI parses it (an unknown option fails the parse even with --help)
    done = _dialq(*command, "--help")
    # then it is accepted
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Usage" in done.stdout or "usage" in done.stdout.lower()
