"""Mailbox states and the earliest token expiry, read from PostgreSQL in the background.

The auth service's ``/metrics`` used to run this query at scrape time, on the event loop:
with PostgreSQL unreachable every scrape waited for the pool (30 s) and ``/healthz``,
answered by the same loop, timed out until the kubelet restarted the pod. A thread now
takes a snapshot every ``interval`` seconds with short timeouts, and a scrape only
reads the latest one (``metrics.TOKEN_HEALTH``).
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.loops import Loop
from services.auth import metrics
from services.auth.store import listing, tokens

log = structlog.get_logger(__name__)

# A snapshot gives up after this long waiting for a connection or for its queries.
SNAPSHOT_TIMEOUT_SECONDS = 5.0


def token_health(pool: ConnectionPool[Connection[Any]]) -> dict[str, Any]:
    with pool.connection(timeout=SNAPSHOT_TIMEOUT_SECONDS) as conn, conn.transaction():
        listing.bound_statements(conn, SNAPSHOT_TIMEOUT_SECONDS)
        states = listing.counts_by_state(conn)
        earliest = tokens.earliest_expiry_seconds(conn)
    return {"states": states, "earliest_expiry_seconds": earliest}


class TokenHealthSampler:
    def __init__(self, pool: ConnectionPool[Connection[Any]], interval: float = 15.0) -> None:
        self._pool = pool
        self._interval = interval

    def sample(self) -> bool:
        try:
            snapshot: dict[str, Any] | None = token_health(self._pool)
        except Exception as exc:  # noqa: BLE001 - the database is away: say so in the metrics
            log.debug("token_health_unavailable", error_type=type(exc).__name__)
            snapshot = None
        metrics.TOKEN_HEALTH.update(snapshot)
        return False  # one snapshot per interval, never more

    def run_forever(self, stop: threading.Event) -> None:
        Loop("token_health", work=self.sample, idle_wait=self._interval).run(stop)
