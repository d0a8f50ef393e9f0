"""A running dialq stack for integration tests: settings, the sandbox, and worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialq import routing
from dialq.api import close_runtimes
from dialq.calls.read import call_detail
from dialq.config import Settings
from dialq.sandbox import RunningSandbox
from dialq.store import Database
from dialq.store import calls_repo as repo

APP_ID = "test-app"
APP_SECRET = "test-secret-never-logged"
WEBHOOK_SECRET = "whsec-test-never-logged"


def stack_env(
    redis_url: str, database_url: str, sandbox_url: str, data_dir: Path
) -> dict[str, str]:
    """DIALQ_* for fast tests: short waits, short timeouts."""
    return {
        "DIALQ_BROKER_URL": redis_url,
        "DIALQ_DATABASE_URL": database_url,
        "DIALQ_DATA_DIR": str(data_dir),
        "DIALQ_SYMBL_BASE_URL": sandbox_url,
        "DIALQ_SYMBL_APP_ID": APP_ID,
        "DIALQ_SYMBL_APP_SECRET": APP_SECRET,
        "DIALQ_CAPACITY_RETRY_S": "0.3",
        "DIALQ_BACKOFF_BASE_S": "0.2",
        "DIALQ_BACKOFF_MAX_S": "1",
        "DIALQ_HTTP_CONNECT_TIMEOUT_S": "2",
        "DIALQ_HTTP_READ_TIMEOUT_S": "2",
        "DIALQ_WATCH_INTERVAL_S": "0.5",
        "DIALQ_MAX_CONCURRENT_CALLS": "50",  # what the test sandbox allows
        "DIALQ_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # The tests' receivers listen on 127.0.0.1, which the SSRF guard refuses by default.
        "DIALQ_WEBHOOK_ALLOW_NETWORKS": '["127.0.0.0/8"]',
        "DIALQ_WEBHOOK_TIMEOUT_S": "1",
        "DIALQ_WEBHOOK_BACKOFF_BASE_S": "0.2",
        "DIALQ_WEBHOOK_BACKOFF_MAX_S": "1",
    }


# Settings() reads os.environ, so `Stack.settings` swaps the process's DIALQ_* variables in and
# back out; producer threads do it at once, and unserialised swaps read another stack's values
# and restored a snapshot taken mid-swap, leaving variables behind for later tests.
ENVIRON_LOCK = threading.Lock()


@dataclass
class Stack:
    env: dict[str, str]
    sandbox: RunningSandbox
    workdir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        """Exactly what the worker processes read: built from the same DIALQ_* variables."""
        with ENVIRON_LOCK:
            saved = dict(os.environ)
            try:
                for key in [k for k in os.environ if k.startswith("DIALQ_")]:
                    del os.environ[key]
                os.environ.update(self.env)
                return Settings()
            finally:
                os.environ.clear()
                os.environ.update(saved)

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
        env.update(self.env)
        return env

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`dialq ARGS...` in a process of its own, with this stack's settings."""
        return subprocess.run(
            [sys.executable, "-m", "dialq.cli", *args],
            env=self.process_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start_worker(
        self, *, concurrency: int = 8, timeout_s: float = 30.0
    ) -> subprocess.Popen[bytes]:
        """A real `celery worker` process; returns once it is consuming."""
        log = self.workdir / f"worker-{len(self.workers)}.log"
        args = [
            sys.executable, "-m", "celery", "-A", "dialq.worker", "worker",
            "-Q", ",".join(routing.ALL_QUEUES), "-c", str(concurrency),
            "--loglevel", "INFO", "-n", f"w{len(self.workers)}@%h", "--without-gossip",
            "--without-mingle",
        ]  # fmt: skip
        sink = log.open("wb")
        process = subprocess.Popen(
            args, env=self.process_env(), stdout=sink, stderr=subprocess.STDOUT
        )
        sink.close()
        self.workers.append(process)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited: {log.read_text()[-3000:]}")
            if b" ready." in log.read_bytes():
                return process
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready in {timeout_s}s: {log.read_text()[-3000:]}")

    def start_beat(self, timeout_s: float = 30.0) -> subprocess.Popen[bytes]:
        """A real `celery beat` process (stopped with the workers); returns once it ticked."""
        log = self.workdir / "beat.log"
        args = [
            sys.executable, "-m", "celery", "-A", "dialq.worker", "beat",
            "-s", str(self.workdir / "beat-schedule"), "--loglevel", "INFO",
        ]  # fmt: skip
        with log.open("wb") as sink:
            process = subprocess.Popen(
                args, env=self.process_env(), stdout=sink, stderr=subprocess.STDOUT
            )
        self.workers.append(process)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"beat exited: {log.read_text()[-3000:]}")
            if b"Sending due task" in log.read_bytes():
                return process
            time.sleep(0.1)
        raise RuntimeError(f"beat did not tick in {timeout_s}s: {log.read_text()[-3000:]}")

    def stop_workers(self) -> None:
        for process in self.workers:
            process.terminate()
        for process in self.workers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.workers.clear()

    def worker_logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.workdir.glob("worker-*.log")))

    def call(self, call_id: str) -> dict[str, Any]:
        db = Database(self.env["DIALQ_DATABASE_URL"])
        try:
            with db.sessions() as session:
                found = repo.get_call(session, call_id)
                assert found is not None, f"no call {call_id}"
                return call_detail(found)
        finally:
            db.dispose()

    def wait_for(self, call_id: str, statuses: set[str], timeout_s: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            detail = self.call(call_id)
            if detail["status"] in statuses:
                return detail
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"call stayed {detail['status']}, wanted {statuses}; events {detail['events']}"
                    f"\n{self.worker_logs()[-4000:]}"
                )
            time.sleep(0.1)

    def starts_for(self, call_id: str) -> list[dict[str, Any]]:
        """Start requests the sandbox received for this call, whatever it answered."""
        return [
            r
            for r in self.sandbox.control.requests()
            if r.get("operation") == "start" and r.get("call_id") == call_id
        ]


@contextmanager
def running_stack(env: dict[str, str], sandbox: RunningSandbox, workdir: Path) -> Iterator[Stack]:
    stack = Stack(env=env, sandbox=sandbox, workdir=workdir)
    db = Database(env["DIALQ_DATABASE_URL"])
    db.upgrade()
    db.dispose()
    try:
        yield stack
    finally:
        stack.stop_workers()
        close_runtimes()
