"""`dialq doctor`: is this deployment able to place calls? Each check says plainly what is wrong.

Checks, in order: the broker, the database and its migration level, each Symbl account (a
real token generation), the workers (a ping), beat (its last tick), the queue depths. A check
whose prerequisite failed (no broker: no ping) is reported as skipped, which counts as a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis
import requests

from dialq import routing
from dialq.config import Settings, mask_url
from dialq.ops.beat import STALE_AFTER_S, last_tick_age_s

OK, FAIL = "OK", "FAIL"
# Above this many waiting messages a queue is reported as a backlog.
DEFAULT_MAX_QUEUE_DEPTH = 10_000
# kombu's Redis transport keeps messages with a priority in sibling lists named like this.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == OK


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:300]


def check_broker(settings: Settings, timeout_s: float) -> tuple[Check, redis.Redis | None]:
    url = mask_url(settings.broker_url)
    client = redis.Redis.from_url(
        settings.broker_url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
    )
    try:
        client.ping()
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "?")
    except redis.AuthenticationError:
        return Check("broker", FAIL, f"{url} refused our password (check DIALQ_BROKER_URL)"), None
    except redis.ResponseError:
        policy = "?"  # CONFIG is often disabled on managed Redis: not an error
    except (redis.ConnectionError, redis.TimeoutError) as error:
        return Check("broker", FAIL, f"cannot reach Redis at {url}: {_short(error)}"), None
    if policy not in ("noeviction", "?"):
        detail = f"{url} evicts keys under memory pressure ({policy}): set noeviction"
        return Check("broker", FAIL, detail), client
    return Check("broker", OK, f"{url} answers"), client


def check_database(settings: Settings) -> Check:
    from dialq.store.db import schema_levels

    url = settings.database_url_resolved
    try:
        current, heads = schema_levels(url)
    except Exception as error:
        cause = error.__cause__ or error  # the driver's own words, first line only
        return Check("database", FAIL, f"cannot connect to {mask_url(url)}: {_short(cause)}")
    if current == heads:
        return Check("database", OK, f"{mask_url(url)} at the newest schema")
    missing = ", ".join(sorted(heads - current)) or "?"
    detail = f"schema not up to date (missing {missing}): run `dialq db upgrade`"
    if not current:
        detail = "no dialq schema yet: run `dialq db upgrade`"
    return Check("database", FAIL, detail)


def check_symbl(
    settings: Settings, timeout_s: float, client: redis.Redis | None = None
) -> list[Check]:
    """Each account's credentials, tried here, and as the workers last found them."""
    from dialq.symbl.auth import MemoryTokenStore, TokenProvider
    from dialq.symbl.errors import CredentialsError, SymblError

    checks = []
    for name, account in sorted(settings.accounts.items()):
        label = f"symbl:{name}"
        if not account.app_id or not account.app_secret.get_secret_value():
            checks.append(Check(label, FAIL, "no app id or secret set for this account"))
            continue
        provider = TokenProvider(
            name,
            account,
            MemoryTokenStore(),  # never the shared cache: this must be a real generation
            requests.Session(),
            renew_margin_s=0,
            connect_timeout_s=timeout_s,
            read_timeout_s=timeout_s,
        )
        try:
            provider.token()
        except CredentialsError as error:
            detail = (
                f"{account.base_url} rejected app id {account.app_id!r}: wrong id or secret"
                if error.status == 401
                else f"{account.base_url} refused app id {account.app_id!r}: {error}"
            )
            checks.append(Check(label, FAIL, detail))
        except SymblError as error:
            checks.append(Check(label, FAIL, f"{account.base_url}: {_short(error)}"))
        else:
            checks.append(Check(label, OK, f"{account.base_url} issued a token"))
        if client is not None:
            checks.extend(_workers_credentials(client, name, account.app_id))
    return checks


def _workers_credentials(client: redis.Redis, name: str, app_id: str) -> list[Check]:
    """What the workers last heard from the token endpoint for this account, if a refusal."""
    from dialq.circuit import Circuit

    why = Circuit(client, kind="credentials").why(name)
    if why is None:
        return []
    detail = (
        f"account {name}: the workers' app id or secret is refused ({why}); its calls wait. "
        "Fix DIALQ_SYMBL_APP_ID/DIALQ_SYMBL_APP_SECRET (or DIALQ_ACCOUNTS) and restart the "
        "workers; calls go on once a token is issued"
    )
    return [Check(f"symbl:{name}:workers", FAIL, detail)]


def check_workers(settings: Settings, timeout_s: float) -> Check:
    from dialq.worker import create_app

    app = create_app(settings)
    try:
        replies = app.control.inspect(timeout=timeout_s).ping() or {}
    except Exception as error:
        return Check("workers", FAIL, f"could not ask workers: {_short(error)}")
    finally:
        app.close()
    if not replies:
        return Check("workers", FAIL, f"no worker answered in {timeout_s:g}s: start `dialq worker`")
    return Check("workers", OK, f"{len(replies)} answering: {', '.join(sorted(replies))}")


def check_beat(client: redis.Redis, now: float | None = None) -> Check:
    """Beat records each tick; a stale record means no schedule is placed, no sweep runs."""
    try:
        age_s = last_tick_age_s(client, now)
    except (redis.RedisError, ValueError) as error:
        return Check("beat", FAIL, f"could not read beat's last tick: {_short(error)}")
    if age_s is None:
        return Check("beat", FAIL, "beat has never ticked here: start `dialq beat`")
    if age_s > STALE_AFTER_S:
        return Check("beat", FAIL, f"last tick {age_s:.0f}s ago: is `dialq beat` running?")
    return Check("beat", OK, f"last tick {age_s:.1f}s ago")


def queue_depths(client: redis.Redis) -> dict[str, int]:
    depths = {}
    for queue in routing.ALL_QUEUES:
        keys = [queue, *(f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS)]
        depths[queue] = sum(int(client.llen(key)) for key in keys)
    return depths


def check_queues(client: redis.Redis, max_depth: int) -> Check:
    try:
        depths = queue_depths(client)
    except redis.RedisError as error:
        return Check("queues", FAIL, f"could not read queue lengths: {_short(error)}")
    summary = ", ".join(f"{queue} {depth}" for queue, depth in depths.items())
    deep = [queue for queue, depth in depths.items() if depth > max_depth]
    if deep:
        return Check("queues", FAIL, f"backlog over {max_depth} ({summary}): add workers")
    return Check("queues", OK, f"waiting messages: {summary}")


def run_checks(
    settings: Settings,
    *,
    timeout_s: float = 3.0,
    ping_timeout_s: float = 1.0,
    max_queue_depth: int = DEFAULT_MAX_QUEUE_DEPTH,
) -> list[Check]:
    """Every check, in order; none raises."""
    broker, client = check_broker(settings, timeout_s)
    checks = [broker]
    checks += _guarded("database", lambda: [check_database(settings)])
    checks += _guarded("symbl", lambda: check_symbl(settings, timeout_s, client))
    if client is None:
        skipped = "skipped: the broker is unreachable"
        checks += [Check(name, FAIL, skipped) for name in ("workers", "beat", "queues")]
        return checks
    checks.append(check_workers(settings, ping_timeout_s))
    checks.append(check_beat(client))
    checks.append(check_queues(client, max_queue_depth))
    client.close()
    return checks


def _guarded(name: str, run: Callable[[], list[Check]]) -> list[Check]:
    """A check that crashed is a failed check, never a crashed doctor."""
    try:
        return run()
    except Exception as error:
        return [Check(name, FAIL, _short(error))]


def as_json(checks: list[Check], elapsed_s: float) -> dict[str, Any]:
    return {
        "ok": all(check.ok for check in checks),
        "elapsed_s": round(elapsed_s, 3),
        "checks": [asdict(check) for check in checks],
    }


def timed(settings: Settings, **options: Any) -> tuple[list[Check], float]:
    started = time.monotonic()
    checks = run_checks(settings, **options)
    return checks, time.monotonic() - started
