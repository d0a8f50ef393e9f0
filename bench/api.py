"""The HTTP API under load: POST /v1/calls beside a bare FastAPI endpoint, and SSE fan-out.

1. Requests per second and p50/p99 latency of `POST /v1/calls` (a `dialq api` process: key
   check, rate limit, validation, idempotency, the broker probe, the row and its publish) with
   --clients concurrent clients, and of a bare FastAPI endpoint that validates a body and
   inserts one row (bench/bare_api.py), served by uvicorn on the same database, measured in
   the same run, alternately, --rounds times each. Target: dialq at least 0.5 of the bare rate.
2. SSE fan-out: --followers clients follow one live call each on one API process; every call
   is then canceled, and each follower's lag is the time from the event's own timestamp to
   its arrival. The p99 lag is printed (a stream polls the database every 0.5 s).

Private Redis, a PostgreSQL schema of its own (dropped after). The machine's load is printed:
the rate is shared with whatever else runs. The last line is JSON.

    .venv/bin/python bench/api.py [--clients 32] [--seconds 8] [--rounds 2] [--followers 200]
        [--admin-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import requests

from bench.harness import percentile, pg_schema
from dialq.http.keys import key_digest, new_key, shown_part
from dialq.ops.local_redis import PrivateRedis, free_port
from dialq.store import Database, apikeys_repo
from dialq.store.tables import ApiKey

BENCH = Path(__file__).resolve().parent
TARGET_RATIO = 0.5
NUMBER = "+14155550123"


@dataclass
class Load:
    """What one timed run of concurrent clients got, and the CPU its server spent on it."""

    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    server_cpu_s: float = 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        """The server process's CPU per answered request: steadier than a rate on a busy
        machine, because the clients' share of the cores does not enter it."""
        return self.server_cpu_s * 1000 / max(1, len(self.latencies_s))

    @property
    def rate(self) -> float:
        return len(self.latencies_s) / self.seconds

    def merged(self, other: Load) -> Load:
        return Load(
            self.seconds + other.seconds,
            self.latencies_s + other.latencies_s,
            self.errors + other.errors,
            self.server_cpu_s + other.server_cpu_s,
        )

    def line(self, name: str) -> str:
        p50, p99 = (percentile(self.latencies_s, f) * 1000 for f in (0.5, 0.99))
        return (
            f"{name:<16} {self.rate:8.1f} req/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
            f"({len(self.latencies_s)} ok, {self.errors} errors)  "
            f"server CPU {self.cpu_ms_per_request:.2f} ms/request"
        )


def cpu_s(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def hammer(
    send: Callable[[requests.Session], int],
    clients: int,
    seconds: float,
    server_process: psutil.Process | None = None,
) -> Load:
    """`clients` threads sending back to back for `seconds`; a 2xx counts, the rest are errors."""
    load = Load(seconds)
    cpu_before = cpu_s(server_process)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                status = send(session)
                took = time.perf_counter() - started
                with lock:
                    if 200 <= status < 300:
                        load.latencies_s.append(took)
                    else:
                        load.errors += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.server_cpu_s = cpu_s(server_process) - cpu_before
    return load


@contextmanager
def server(
    command: list[str], env: dict[str, str], health: str, log: Path
) -> Iterator[psutil.Process]:
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()[-3000:])
            try:
                if requests.get(health, timeout=5).status_code < 500:
                    break
            except requests.RequestException:  # not listening yet, or too busy starting
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def make_key(database_url: str) -> str:
    key = new_key()
    db = Database(database_url)
    try:
        with db.transaction() as session:
            apikeys_repo.add_key(
                session,
                ApiKey(
                    id=str(uuid.uuid4()),
                    prefix=shown_part(key),
                    key_sha256=key_digest(key),
                    accounts=["default"],
                    scopes=["admin"],
                    created_at=datetime.now(UTC),
                ),
            )
    finally:
        db.dispose()
    return key


def post_rates(
    api: str,
    bare: str,
    key: str,
    args: argparse.Namespace,
    processes: tuple[psutil.Process, psutil.Process],
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {key}"}
    body = {"phone_number": NUMBER}

    def dialq_post(session: requests.Session) -> int:
        return session.post(f"{api}/v1/calls", json=body, headers=auth, timeout=30).status_code

    def bare_post(session: requests.Session) -> int:
        return session.post(f"{bare}/bare", json=body, timeout=30).status_code

    hammer(dialq_post, 4, 1.0)  # warm: pools, the first migration check, imports
    hammer(bare_post, 4, 1.0)
    totals = {"bare": Load(0.0), "dialq": Load(0.0)}
    for index in range(args.rounds):  # alternated, so a change of machine load hits both
        bare_round = hammer(bare_post, args.clients, args.seconds, processes[1])
        dialq_round = hammer(dialq_post, args.clients, args.seconds, processes[0])
        ratio = dialq_round.rate / bare_round.rate
        print(f"round {index + 1}: bare {bare_round.rate:6.1f} req/s, "
              f"dialq {dialq_round.rate:6.1f} req/s, ratio {ratio:.2f}")  # fmt: skip
        totals["bare"] = totals["bare"].merged(bare_round)
        totals["dialq"] = totals["dialq"].merged(dialq_round)
    print(totals["bare"].line("bare insert"))
    print(totals["dialq"].line("POST /v1/calls"))
    ratio = totals["dialq"].rate / totals["bare"].rate
    verdict = "OK" if ratio >= TARGET_RATIO else "UNDER"
    print(f"ratio dialq/bare: {ratio:.2f} (target >= {TARGET_RATIO}: {verdict})")
    return {
        name: {
            "rate": round(load.rate, 1),
            "p50_ms": round(percentile(load.latencies_s, 0.5) * 1000, 1),
            "p99_ms": round(percentile(load.latencies_s, 0.99) * 1000, 1),
            "errors": load.errors,
            "server_cpu_ms": round(load.cpu_ms_per_request, 2),
        }
        for name, load in totals.items()
    } | {"ratio": round(ratio, 3)}


def follow(api: str, key: str, call_id: str, ready: threading.Semaphore) -> float | None:
    """Follow one call's stream; the lag of its `canceled` event, in seconds."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    with requests.get(
        f"{api}/v1/calls/{call_id}/events", headers=headers, stream=True, timeout=120
    ) as answer:
        for line in answer.iter_lines(decode_unicode=True):
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event["to"] == "queued":
                ready.release()
            elif event["to"] == "canceled":
                at = datetime.fromisoformat(event["at"])
                return (datetime.now(UTC) - at).total_seconds()
    return None


def fan_out(api: str, key: str, followers: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {key}"}
    with requests.Session() as session:
        ids = [
            session.post(f"{api}/v1/calls", json={"phone_number": NUMBER}, headers=auth).json()[
                "id"
            ]
            for _ in range(followers)
        ]
    ready = threading.Semaphore(0)
    with ThreadPoolExecutor(max_workers=followers) as pool:
        lags = [pool.submit(follow, api, key, call_id, ready) for call_id in ids]
        for _ in ids:  # every stream is open and has sent its first event
            if not ready.acquire(timeout=120):
                raise RuntimeError("a follower never got its first event")
        with requests.Session() as session:
            for call_id in ids:
                session.post(f"{api}/v1/calls/{call_id}/cancel", headers=auth, timeout=30)
        got = [lag.result() for lag in lags]
    seen = [lag for lag in got if lag is not None]
    p50, p99 = (percentile(seen, f) * 1000 for f in (0.5, 0.99))
    print(
        f"SSE fan-out: {followers} followers, {len(seen)} got their event; "
        f"delivery lag p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(seen) * 1000:.0f} ms"
    )
    return {"followers": followers, "delivered": len(seen), "lag_p50_ms": round(p50),
            "lag_p99_ms": round(p99)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    workdir = Path(tempfile.mkdtemp(prefix="dialq-bench-api-"))
    broker = PrivateRedis(port=free_port()).start()
    try:
        with pg_schema(args.admin_url) as database_url:
            Database(database_url).upgrade()
            key = make_key(database_url)
            env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
            env.update(
                DIALQ_DATABASE_URL=database_url,
                DIALQ_BROKER_URL=broker.url,
                DIALQ_DATA_DIR=str(workdir),
                DIALQ_SYMBL_APP_ID="bench",
                DIALQ_SYMBL_APP_SECRET="bench",  # noqa: S106 (no Symbl is called here)
                DIALQ_API_RATE_LIMIT="10000000/minute",
                BENCH_DATABASE_URL=database_url,
            )
            api_port, bare_port = free_port(), free_port()
            api, bare = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
            # No access log, as the bare server (its `--log-level warning`); each placed call
            # still logs its line.
            api_cmd = [sys.executable, "-m", "dialq.cli", "api", "--port", str(api_port),
                       "--no-access-log"]  # fmt: skip
            bare_cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH), "bare_api:app",
                        "--port", str(bare_port), "--log-level", "warning"]  # fmt: skip
            with (
                server(api_cmd, env, f"{api}/healthz", workdir / "api.log") as api_process,
                server(bare_cmd, env, f"{bare}/docs", workdir / "bare.log") as bare_process,
            ):
                processes = (api_process, bare_process)
                figures: dict[str, Any] = {"post": post_rates(api, bare, key, args, processes)}
                figures["sse"] = fan_out(api, key, args.followers)
    finally:
        broker.stop()
    figures["load_average_after"] = round(os.getloadavg()[0], 2)
    print(f"load average after: {figures['load_average_after']:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
