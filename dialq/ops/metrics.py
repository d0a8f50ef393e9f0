"""Prometheus metrics from a worker process, on DIALQ_METRICS_PORT (0: off).

Two kinds, both read without hooks in the call code:
- gauges computed at scrape time from the database (calls by state, waiting calls and the
  oldest one's age) and from Redis (capacity permits in use per account). The database is
  the source of truth, so every worker reports the same values: aggregate them with max().
- counters kept by this process, fed by the rows it commits (start requests and their latency,
  429s, webhook failures): a SQLAlchemy session hook sees every attempt row this process
  writes. Sum them across workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dialq.calls.states import CallStatus
from dialq.config import Settings
from dialq.store import Database, calls_repo, observers, state_counts

log = logging.getLogger("dialq.metrics")

REGISTRY = CollectorRegistry()
START_REQUESTS = Counter(
    "dialq_start_requests",
    "Start requests (POST /v1/endpoint:connect) sent by this process, by answer",
    ["code"],
    registry=REGISTRY,
)
START_LATENCY = Histogram(
    "dialq_start_latency_seconds",
    "Latency of start requests sent by this process, whatever the answer",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
CAPACITY_REJECTIONS = Counter(
    "dialq_capacity_rejections",
    "429 answers (account's concurrent-call limit reached) to start requests of this process",
    registry=REGISTRY,
)
POISON_MESSAGES = Counter(
    "dialq_poison_messages",
    "Messages on dialq's queues no task could run, acknowledged and set aside (see dialq poison)",
    ["kind"],
    registry=REGISTRY,
)
WEBHOOK_FAILURES = Counter(
    "dialq_webhook_failures",
    "Webhook POSTs of this process that the receiver did not accept (non-2xx or no answer)",
    registry=REGISTRY,
)


def _code_label(status_code: int | None) -> str:
    return str(status_code) if status_code is not None else "error"


def observe_start(status_code: int | None, latency_ms: float) -> None:
    """Count one start request and its latency."""
    START_REQUESTS.labels(code=_code_label(status_code)).inc()
    START_LATENCY.observe(max(0.0, latency_ms) / 1000.0)
    if status_code == 429:
        CAPACITY_REJECTIONS.inc()


def observe_webhook(status_code: int | None) -> None:
    """Count one webhook POST, if the receiver did not accept it."""
    if status_code is None or not 200 <= status_code < 300:
        WEBHOOK_FAILURES.inc()


def _observe(kind: str, status_code: int | None, latency_ms: float) -> None:
    if kind == "start":
        observe_start(status_code, latency_ms)
    else:
        observe_webhook(status_code)


def count_committed_attempts() -> None:
    """Feed the counters from every attempt row this process commits (idempotent)."""
    observers.on_committed_attempts(_observe)


PermitsSource = Callable[[], dict[str, int]]


def capacity_permits(settings: Settings) -> PermitsSource:
    """Permits in use per account, read from the capacity module's Redis sets at scrape time."""
    from dialq.capacity import Capacity

    limits = {name: account.max_concurrent_calls for name, account in settings.accounts.items()}
    capacity = Capacity(redis.Redis.from_url(settings.broker_url), limits)
    return lambda: {name: capacity.usage(name).permits_in_use for name in limits}


class DatabaseCollector(Collector):
    """Gauges read from the database at each scrape: the kept counts by state (after a fold
    of the changes since the last), and one MIN over the waiting calls."""

    def __init__(
        self,
        db: Database,
        permits: PermitsSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._permits = permits
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "dialq_database_up", "1 when the last scrape could read the database"
        )
        try:
            yield from self._from_database()
            up.add_metric([], 1)
        except Exception:
            log.warning("metrics: could not read the database", exc_info=True)
            up.add_metric([], 0)
        yield up
        yield from self._permit_metrics()

    def _from_database(self) -> Iterable[Metric]:
        # Folding first keeps the count's cost to the changes of one scrape interval even
        # where no watchdog runs.
        with self._db.transaction() as session:
            state_counts.fold(session)
        with self._db.sessions() as session:
            counts = calls_repo.count_by_status(session)
            oldest = calls_repo.oldest_created_in(session, CallStatus.WAITING)
        by_state = GaugeMetricFamily(
            "dialq_calls", "Calls in the database by state", labels=["state"]
        )
        for state in CallStatus:
            by_state.add_metric([state.value], counts.get(state.value, 0))
        waiting = counts.get(CallStatus.WAITING.value, 0)
        age_s = max(0.0, (self._clock() - oldest).total_seconds()) if oldest else 0.0
        return [
            by_state,
            GaugeMetricFamily("dialq_waiting_calls", "Calls waiting for capacity", value=waiting),
            GaugeMetricFamily(
                "dialq_oldest_waiting_call_age_seconds",
                "Age of the oldest call waiting for capacity (0 when none waits)",
                value=age_s,
            ),
        ]

    def _permit_metrics(self) -> Iterable[Metric]:
        if self._permits is None:
            return []
        try:
            in_use = self._permits()
        except Exception:
            log.warning("metrics: could not read permits", exc_info=True)
            return []
        family = GaugeMetricFamily(
            "dialq_permits_in_use", "Capacity permits held, by account", labels=["account"]
        )
        for account, count in sorted(in_use.items()):
            family.add_metric([account], count)
        return [family]


_served: list[int] = []


def serve(
    port: int, db: Database, permits: PermitsSource | None = None, *, addr: str = "127.0.0.1"
) -> CollectorRegistry:
    """Start the /metrics HTTP server in a background thread of this process (once), on
    `addr` (DIALQ_METRICS_ADDR): this host only unless opened on purpose."""
    if _served:
        return REGISTRY
    _served.append(port)
    count_committed_attempts()
    REGISTRY.register(DatabaseCollector(db, permits))
    start_http_server(port, addr=addr, registry=REGISTRY)
    log.info("metrics on %s:%d/metrics", addr, port)
    return REGISTRY
