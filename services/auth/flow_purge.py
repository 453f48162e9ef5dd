"""Deletes sign-in flows that can no longer be used.

Every unauthenticated ``GET /connect`` or ``/admin-consent`` writes an ``oauth_flows`` row;
one that is never completed would otherwise stay forever. A flow past ``expires_at`` is
refused by ``store.flows.take_flow`` anyway, so deleting it changes no answer.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.health import Heartbeat
from common.loops import Loop
from services.auth.store import flows

log = structlog.get_logger(__name__)


class FlowPurger:
    def __init__(self, pool: ConnectionPool[Connection[Any]], interval: float) -> None:
        self._pool = pool
        self._interval = interval
        # Silent for three rounds (or two minutes) means the loop is stuck, not just waiting.
        self.heartbeat = Heartbeat(max_age=max(120.0, 3 * interval))

    def purge(self) -> bool:
        with self._pool.connection() as conn:
            deleted = flows.purge_flows(conn)
        if deleted:
            log.info("oauth_flows_purged", flows=deleted)
        return False  # whatever expires meanwhile waits for the next round

    def run_forever(self, stop: threading.Event) -> None:
        Loop(
            "oauth_flow_purge",
            work=self.purge,
            idle_wait=self._interval,
            heartbeat=self.heartbeat,
            # The database may be away: tried again next round, after the usual wait.
            error_pause=self._interval,
            error_level="warning",
        ).run(stop)
