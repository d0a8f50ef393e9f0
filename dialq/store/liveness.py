"""A pooled PostgreSQL connection is checked before use only when it may be dead.

SQLAlchemy's `pool_pre_ping` sends a statement at every checkout: a round trip on each of a
dial's transactions, on a pool that is healthy almost always. A connection resting in the pool
has nothing to read from its server; when the server closes it (a restart, a failover, an
administrator's terminate, an idle timeout) the socket turns readable: the server's last words
or the end of the stream. So a checkout asks the socket, with no round trip, and pings only
when it is readable or the connection rested longer than `idle_ping_s` (a peer that vanished
without closing: a NAT or firewall forgetting the flow). A ping that fails raises
`DisconnectionError`, and the pool replaces the connection before anyone uses it.
"""

from __future__ import annotations

import select
import time
from typing import Any

from sqlalchemy import Engine, event, exc

IDLE_PING_S = 30.0
_RESTED_AT = "dialq.rested_at"


def needs_ping(dbapi_connection: Any, rested_s: float, idle_ping_s: float = IDLE_PING_S) -> bool:
    """True when the connection may be dead: its socket is readable, or it rested too long."""
    if rested_s > idle_ping_s:
        return True
    try:
        # poll, not select: select() refuses descriptors above 1023, which a process holding
        # many sockets (an API serving many event streams) gives its database connections.
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except Exception:  # closed, or a driver without a socket: let the ping decide
        return True


def install(engine: Engine, idle_ping_s: float = IDLE_PING_S) -> None:
    """Check `engine`'s pooled connections at checkout, as the module says."""

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RESTED_AT] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        rested_at = record.info.pop(_RESTED_AT, None)
        if rested_at is None:  # new from connect(): nothing to check
            return
        if not needs_ping(dbapi_connection, time.monotonic() - rested_at, idle_ping_s):
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection is gone: {error}") from error

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)
