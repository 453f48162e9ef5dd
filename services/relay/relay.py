"""The outbox relay: unpublished rows → RabbitMQ, each confirmed before it is marked.

A batch is published pipelined (publisher.py): all its events go out, then the confirms
come back together, instead of one round trip per event.

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
from psycopg_pool import ConnectionPool, PoolClosed

from common.db import OUTBOX_CHANNEL, NotificationListener
from common.events import EVENT_TYPES
from common.health import Heartbeat
from common.loops import Loop, Pause
from services.relay import store
from services.relay.errors import PublishRefused
from services.relay.publisher import REFUSAL_REASONS, UNROUTABLE, EventPublisher

log = structlog.get_logger(__name__)

BATCH = 200
BACKLOG_EVERY = 1.0
REFUSED_PAUSE = 10.0
OUTAGE_PAUSE = 1.0

PENDING = Gauge("bandeja_outbox_pending", "Outbox events not yet published")
OLDEST_AGE = Gauge(
    "bandeja_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox event"
)
PUBLISHED = Counter("bandeja_events_published", "Events published to RabbitMQ", ["type"])
for _type in EVENT_TYPES:
    PUBLISHED.labels(_type)
PUBLISH_REFUSED = Counter(
    "bandeja_events_publish_refused",
    "Publishes RabbitMQ refused for a reason retrying cannot fix (the event stays in the outbox)",
    ["reason"],
)
for _reason in (*REFUSAL_REASONS.values(), UNROUTABLE):
    PUBLISH_REFUSED.labels(_reason)


class Relay:
    def __init__(
        self, pool: ConnectionPool[Connection[Any]], dsn: str, publisher: EventPublisher
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._publisher = publisher
        self.heartbeat = Heartbeat()
        self._backlog_reported_at = 0.0

    def relay_batch(self) -> int:
        """Publish one batch, pipelined; the row locks are held until RabbitMQ settled every
        event. Only confirmed events are marked; a nacked, returned or unconfirmed one keeps
        its reason and goes again in a later batch."""
        with self._pool.connection() as conn, conn.transaction():
            rows = store.claim_pending(conn, BATCH)
            if not rows:
                return 0
            outcome = self._publisher.publish_batch([row["event"] for row in rows])
            confirmed = set(outcome.confirmed)
            store.mark_published(conn, [row["id"] for row in rows if str(row["id"]) in confirmed])
            store.record_failures(
                conn, {event_id: str(exc) for event_id, exc in outcome.failed.items()}
            )
        by_error: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            event_id = str(row["id"])
            if event_id in confirmed:
                PUBLISHED.labels(row["event_type"]).inc()
            elif event_id in outcome.failed:
                by_error.setdefault(str(outcome.failed[event_id]), []).append(row)
        # One line per cause: a dropped connection fails the whole batch at once.
        for error, failed_rows in by_error.items():
            log.warning(
                "publish_failed",
                error=error,
                events=len(failed_rows),
                event_id=str(failed_rows[0]["id"]),
                event_types=sorted({row["event_type"] for row in failed_rows}),
            )
        failures = list(outcome.failed.values())
        if failures:
            # A refusal first: only an operator helps, and relay_turn pauses for it.
            raise next((f for f in failures if isinstance(f, PublishRefused)), failures[0])
        return len(confirmed)

    def report_backlog(self) -> None:
        with self._pool.connection() as conn:
            pending, oldest_age = store.backlog(conn)
        PENDING.set(pending)
        OLDEST_AGE.set(oldest_age)

    def run_forever(self, stop: threading.Event, idle_wait: float = 1.0) -> None:
        listener = NotificationListener(self._dsn, OUTBOX_CHANNEL)
        loop = Loop(
            "relay",
            work=self.relay_turn,
            idle_wait=idle_wait,
            wake=listener.wait,
            heartbeat=self.heartbeat,
            # The database or the broker away: an outage, tried again in a second.
            error_pause=OUTAGE_PAUSE,
            error_level="warning",
            error_event="relay_error",
            error_traceback=False,
        )
        try:
            loop.run(stop)
        finally:
            listener.close()
            self._publisher.close()

    def relay_turn(self) -> bool | Pause:
        """One batch; True when a full one went out (more is likely waiting)."""
        try:
            # Declares the topology at start and after a broker restart, so an ERP queue
            # can bind before the first event exists.
            self._publisher.keep_alive()
            return self.relay_batch() >= BATCH
        except PublishRefused as exc:
            PUBLISH_REFUSED.labels(exc.reason).inc()
            log.error(  # noqa: TRY400 - a known refusal: its traceback says nothing
                "publish_refused", reason=exc.reason, error=str(exc)[:300]
            )
            return Pause(REFUSED_PAUSE)  # only an operator helps: try now and then
        finally:
            # Counting the outbox after every batch cost a sixth of the relay's time. It
            # goes on while the broker is away: the outbox-age alert depends on it.
            if time.monotonic() - self._backlog_reported_at > BACKLOG_EVERY:
                self._report_backlog_quietly()

    def _report_backlog_quietly(self) -> None:
        try:
            self.report_backlog()
            self._backlog_reported_at = time.monotonic()
        except PoolClosed:
            pass  # the relay is stopping (common.runtime.stop_loops): nothing to report
        except Exception as exc:  # noqa: BLE001 - a database outage, logged
            log.warning("backlog_unknown", error_type=type(exc).__name__)
