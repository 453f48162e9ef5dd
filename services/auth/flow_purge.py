"""Deletes sign-in flows that can no longer be used.

Every unauthenticated ``GET /connect`` or ``/admin-consent`` writes an ``oauth_flows`` row;
one that is never completed would otherwise stay forever. A flow past ``expires_at`` is
refused by ``store.take_flow`` anyway, so deleting it changes no answer.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.health import Heartbeat
from services.auth import store

log = structlog.get_logger(__name__)


class FlowPurger:
    def __init__(self, pool: ConnectionPool[Connection[Any]], interval: float) -> None:
        self._pool = pool
        self._interval = interval
        # Silent for three rounds (or two minutes) means the loop is stuck, not just waiting.
        self.heartbeat = Heartbeat(max_age=max(120.0, 3 * interval))

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.heartbeat.beat()
            try:
                with self._pool.connection() as conn:
                    deleted = store.purge_flows(conn)
                if deleted:
                    log.info("oauth_flows_purged", flows=deleted)
            except Exception:  # the database may be away: try again next round
                log.warning("oauth_flow_purge_failed", exc_info=True)
            stop.wait(self._interval)
