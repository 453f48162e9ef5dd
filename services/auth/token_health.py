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

from services.auth import metrics, store

log = structlog.get_logger(__name__)

# A snapshot gives up after this long waiting for a connection or for its queries.
SNAPSHOT_TIMEOUT_SECONDS = 5.0


def token_health(pool: ConnectionPool[Connection[Any]]) -> dict[str, Any]:
    with pool.connection(timeout=SNAPSHOT_TIMEOUT_SECONDS) as conn, conn.transaction():
        conn.execute(f"SET LOCAL statement_timeout = {int(SNAPSHOT_TIMEOUT_SECONDS * 1000)}")
        states = store.mailbox_counts_by_state(conn)
        row = conn.execute(
            "SELECT extract(epoch FROM min(t.access_expires_at) - now()) AS s"
            " FROM mailbox_tokens t JOIN mailboxes m ON m.id = t.mailbox_id"
            " WHERE m.state = 'active'"
        ).fetchone()
    earliest = row["s"] if row else None
    return {
        "states": states,
        "earliest_expiry_seconds": float(earliest) if earliest is not None else None,
    }


class TokenHealthSampler:
    def __init__(self, pool: ConnectionPool[Connection[Any]], interval: float = 15.0) -> None:
        self._pool = pool
        self._interval = interval

    def sample(self) -> None:
        try:
            snapshot: dict[str, Any] | None = token_health(self._pool)
        except Exception as exc:  # noqa: BLE001 - the database is away: say so in the metrics
            log.debug("token_health_unavailable", error_type=type(exc).__name__)
            snapshot = None
        metrics.TOKEN_HEALTH.update(snapshot)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.sample()
            stop.wait(self._interval)
