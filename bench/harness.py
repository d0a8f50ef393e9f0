"""Shared plumbing for the benchmarks: a private Redis, a sandbox process, worker processes."""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dialq.ops.local_redis import free_port
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


@contextmanager
def celery_process(
    args: Sequence[str],
    env: dict[str, str],
    log: Path,
    ready: bytes,
    timeout_s: float = 30.0,
    nice: int = 0,
) -> Iterator[subprocess.Popen[bytes]]:
    """`celery -A ...` with `args`; yields once `ready` shows in its log (worker, beat, ...).
    `nice` as `dialq worker` gives the pool it runs (background pools yield the CPU)."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", *args],
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=functools.partial(os.nice, nice) if nice else None,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while ready not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery {args[:3]} failed: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def child_pids(pid: int) -> list[int]:
    """Direct children of a process, read from every /proc/PID/stat (Linux)."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The parent is the second field after the command name, which may hold spaces.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MB (VmRSS from /proc); 0 when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    return rss_mb(pid) + sum(tree_rss_mb(child) for child in child_pids(pid))


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (nan with fewer than two distinct xs)."""
    if len(xs) < 2 or len(set(xs)) < 2:
        return float("nan")
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return numerator / sum((x - mean_x) ** 2 for x in xs)


class MemorySampler(threading.Thread):
    """Each probe (MB) every `every_s` seconds, as (time, {name: MB})."""

    def __init__(self, probes: dict[str, Callable[[], float]], every_s: float) -> None:
        super().__init__(daemon=True)
        self.probes, self.every_s = probes, every_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.done = threading.Event()

    def sample(self) -> dict[str, float]:
        taken = {name: probe() for name, probe in self.probes.items()}
        self.samples.append((time.time(), taken))
        return taken

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            self.sample()


@contextmanager
def pg_schema(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema (dropped after); yields a SQLAlchemy URL bound to it."""
    import psycopg

    schema = f"dialq_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            base = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
            yield f"{base}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
