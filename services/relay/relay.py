"""The outbox relay: unpublished rows → RabbitMQ, each confirmed before it is marked.

Replicas claim rows with ``FOR UPDATE SKIP LOCKED``, so in the normal case no row is
published twice; a crash between the broker's confirm and the commit re-publishes it
with the same id, which the ERP de-duplicates (at-least-once, stable ids).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.db import OUTBOX_CHANNEL, NotificationListener
from common.errors import ServiceUnavailable
from common.events import EVENT_TYPES
from common.health import Heartbeat
from services.relay.publisher import EventPublisher

log = structlog.get_logger(__name__)

BATCH = 200
BACKLOG_EVERY = 1.0

PENDING = Gauge("bandeja_outbox_pending", "Outbox events not yet published")
OLDEST_AGE = Gauge(
    "bandeja_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox event"
)
PUBLISHED = Counter("bandeja_events_published", "Events published to RabbitMQ", ["type"])
for _type in EVENT_TYPES:
    PUBLISHED.labels(_type)


class Relay:
    def __init__(
        self, pool: ConnectionPool[Connection[Any]], dsn: str, publisher: EventPublisher
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._publisher = publisher
        self.heartbeat = Heartbeat()

    def relay_batch(self) -> int:
        """Publish one batch; the row locks are held until every event is confirmed."""
        with self._pool.connection() as conn, conn.transaction():
            rows = conn.execute(
                "SELECT id, event_type, event FROM outbox WHERE published_at IS NULL"
                " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED",
                (BATCH,),
            ).fetchall()
            published = []
            for row in rows:
                try:
                    self._publisher.publish(row["event"])
                except ServiceUnavailable as exc:
                    log.warning("publish_failed", event_id=str(row["id"]), error=str(exc))
                    break
                published.append(row["id"])
                PUBLISHED.labels(row["event_type"]).inc()
            if published:
                conn.execute(
                    "UPDATE outbox SET published_at = now(), attempts = attempts + 1"
                    " WHERE id = ANY(%s)",
                    (published,),
                )
        if len(published) < len(rows):
            raise ServiceUnavailable("broker refused an event; the rest wait for the next try")
        return len(published)

    def report_backlog(self) -> None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0)"
                " AS age FROM outbox WHERE published_at IS NULL"
            ).fetchone()
        assert row is not None
        PENDING.set(row["n"])
        OLDEST_AGE.set(float(row["age"]))

    def run_forever(self, stop: threading.Event, idle_wait: float = 1.0) -> None:
        listener = NotificationListener(self._dsn, OUTBOX_CHANNEL)
        reported_at = 0.0
        while not stop.is_set():
            self.heartbeat.beat()
            try:
                count = self.relay_batch()
                # Counting the outbox after every batch cost a sixth of the relay's time.
                if time.monotonic() - reported_at > BACKLOG_EVERY:
                    self.report_backlog()
                    reported_at = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the relay outlives DB and broker outages
                log.warning("relay_error", error_type=type(exc).__name__, error=str(exc)[:200])
                stop.wait(1.0)
                continue
            if count < BATCH:
                listener.wait(idle_wait)
        listener.close()
        self._publisher.close()
