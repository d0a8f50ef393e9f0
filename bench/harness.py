"""Shared plumbing for the benchmarks: a private Redis, a sandbox process, worker processes."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dialq.redis_server import free_port
from dialq.sandbox import SandboxControl

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _wait_http(url: str, timeout_s: float) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/_sandbox/calls", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"sandbox at {url} did not start")


@contextmanager
def sandbox_process(*args: str, log: Path) -> Iterator[tuple[str, SandboxControl]]:
    """The sandbox in its own process, so it never shares a GIL with the system measured."""
    port = free_port()
    command = [sys.executable, "-m", "dialq.sandbox", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen([*command, *args], stdout=sink, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_http(url, 20)
            yield url, SandboxControl(url)
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def celery_worker(
    app: str, queues: str, env: dict[str, str], log: Path, concurrency: int = 8
) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues, "-P", "threads",
        "-c", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=full_env, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 30
            while b" ready." not in log.read_bytes():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker failed: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
