"""The soak's stack: its settings, its worker and beat processes, and the faults it arms."""

from __future__ import annotations

import os
import random
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.harness import celery_process, child_pids
from dialq import routing
from dialq.sandbox import SandboxControl

APP_ID, APP_SECRET = "soak-app", "soak-secret"
START = {"path": "/v1/endpoint:connect", "operation": "start"}
CONVERSATIONS = {"path": "/v1/conversations/*"}
# Modest: about one request in ten misbehaves. 429 is rare because dialq reads it as "the
# account is full" and pauses the whole account (README, "Capacity"), as it should.
FAULT_RATES = {"500": 0.03, "503": 0.02, "429": 0.005, "drop": 0.01, "slow": 0.02, "hang": 0.01}


def stack_env(redis_url: str, database_url: str, sandbox_url: str, args: Any) -> dict[str, str]:
    """Short timeouts and waits, to match calls of a few seconds."""
    return {
        "DIALQ_BROKER_URL": redis_url,
        "DIALQ_DATABASE_URL": database_url,
        "DIALQ_DATA_DIR": str(args.workdir / "data"),
        "DIALQ_SYMBL_BASE_URL": sandbox_url,
        "DIALQ_SYMBL_APP_ID": APP_ID,
        "DIALQ_SYMBL_APP_SECRET": APP_SECRET,
        "DIALQ_MAX_CONCURRENT_CALLS": str(args.max_concurrent),
        "DIALQ_WATCH_INTERVAL_S": "1",
        "DIALQ_HTTP_CONNECT_TIMEOUT_S": "2",
        "DIALQ_HTTP_READ_TIMEOUT_S": str(args.hang_seconds - 2),  # a hang is a read timeout
        "DIALQ_CAPACITY_RETRY_S": "1",
        "DIALQ_BACKOFF_BASE_S": "0.5",
        "DIALQ_BACKOFF_MAX_S": "5",
        # An unknown call keeps its permit for its lease: keep that short, like the calls.
        "DIALQ_PERMIT_LEASE_MARGIN_S": "10",
        "DIALQ_INSIGHTS_BACKOFF_BASE_S": "1",
        "DIALQ_INSIGHTS_BACKOFF_MAX_S": "5",
    }


def start_processes(stack: ExitStack, env: dict[str, str], args: Any) -> dict[str, int]:
    """Worker processes and beat; returns their pids by name."""
    pids: dict[str, int] = {}
    queues = ",".join(routing.ALL_QUEUES)
    for index in range(args.workers):
        worker = [
            "-A", "dialq.worker", "worker", "-Q", queues, "-P", "threads",
            "-c", str(args.concurrency), "-n", f"soak{index}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        log = args.workdir / f"worker-{index}.log"
        pids[f"worker-{index}"] = stack.enter_context(
            celery_process(worker, env, log, b" ready.")
        ).pid
    beat = [
        "-A", "dialq.worker", "beat", "-s", str(args.workdir / "beat-schedule"),
        "--loglevel", "INFO", "--pidfile", "",
    ]  # fmt: skip
    log = args.workdir / "beat.log"
    pids["beat"] = stack.enter_context(celery_process(beat, env, log, b"Sending due task")).pid
    return pids


def arm_faults(control: SandboxControl, args: Any) -> None:
    """Random faults on start requests; the same rates, seeded, on the Conversation API."""
    control.random_faults(
        args.seed, FAULT_RATES, match=START, hang_seconds=args.hang_seconds, slow_seconds=1.0
    )
    control.script(conversation_rules(args))


def conversation_rules(args: Any) -> list[dict[str, Any]]:
    """Random faults need one match: the Conversation API gets scripted rules, drawn here."""
    rng = random.Random(args.seed + 1)
    horizon = int(60 * args.rate * (args.duration + args.drain))  # generous: about 60 per call
    picked: dict[str, list[int]] = {kind: [] for kind in FAULT_RATES}
    for nth in range(1, horizon + 1):
        draw = rng.random()
        for kind, rate in FAULT_RATES.items():
            if draw < rate:
                picked[kind].append(nth)
                break
            draw -= rate
    return [
        {"match": CONVERSATIONS, "nth": nths, "action": fault_action(kind, args.hang_seconds)}
        for kind, nths in picked.items()
        if nths
    ]


def fault_action(kind: str, hang_seconds: float) -> dict[str, Any]:
    if kind.isdigit():
        return {"type": "status", "status": int(kind)}
    if kind in ("slow", "hang"):
        return {"type": kind, "seconds": 1.0 if kind == "slow" else hang_seconds}
    return {"type": kind}


def sandbox_pid() -> int:
    """The sandbox is a child of this process (bench.harness.sandbox_process started it)."""
    for pid in child_pids(os.getpid()):
        try:
            if b"dialq.sandbox" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise RuntimeError("sandbox process not found")
