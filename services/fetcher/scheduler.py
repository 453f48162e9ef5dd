"""Enqueues a fetch for each due mailbox. Safe to run in every fetcher replica.

``FOR UPDATE SKIP LOCKED`` plus moving ``next_fetch_at`` forward in the same statement
means two schedulers never enqueue the same due mailbox twice; the per-mailbox lease
in the fetch run is the second guard.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.broker import FETCH_QUEUE, send
from common.db import MAILBOX_CHANNEL, NotificationListener
from common.health import Heartbeat
from services.fetcher import metrics

log = structlog.get_logger(__name__)

BATCH = 500
# Every active mailbox's poll age is read this often (one scan of the table): per cycle
# it was, and cycles grow with the fleet, so 10,000 mailboxes cost a core in this alone.
FETCH_AGE_EVERY = 15.0


def claim_gap(poll_interval: float) -> float:
    """Least pause between two claims that found less than a batch: the mailboxes that
    fall due meanwhile are claimed (and enqueued) together, one statement for all.

    1/120 of the interval keeps a poll at most that share late (0.5 s at a minute), and
    instead of one claim per due mailbox (167 a second at 10,000 mailboxes a minute) the
    scheduler runs two a second. A NOTIFY (a connect, a wake-up) still claims at once.
    """
    return min(0.5, max(0.02, poll_interval / 120))


# The jitter only shortens the interval (90-100 % of it): the setting is the longest a
# mailbox goes unchecked, as "checked at least once a minute" reads. At ±10 % a 60 s
# poll left a mail up to 66 s unseen, and the freshness p95 at 59.7 s (BENCHMARKS.md).
# The due rows come from the partial index mailboxes_due; ``= ANY(ARRAY(...))`` then
# updates them by primary key. ``IN (subquery)`` was planned as a hash semi-join over a
# sequential scan of every mailbox: each claim read the whole table (10,000 rows).
_CLAIM_DUE = (
    "UPDATE mailboxes SET next_fetch_at = now() + make_interval(secs =>"
    "   coalesce(poll_interval, %s) * (0.9 + random() * 0.1))"
    " WHERE id = ANY(ARRAY(SELECT id FROM mailboxes"
    "   WHERE state = 'active' AND next_fetch_at <= now()"
    "     AND (lease_until IS NULL OR lease_until < now())"
    "   ORDER BY next_fetch_at LIMIT %s FOR UPDATE SKIP LOCKED))"
    " RETURNING id"
)


def claim_due(conn: Connection[Any], poll_interval: float, limit: int = BATCH) -> list[int]:
    """Mailboxes due now; their next poll is pushed 90-100 % of an interval ahead."""
    rows = conn.execute(_CLAIM_DUE, (poll_interval, limit)).fetchall()
    return [r["id"] for r in rows]


def observe_fetch_age(conn: Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT extract(epoch FROM now() - coalesce(last_fetch_at, created_at)) AS age"
        " FROM mailboxes WHERE state = 'active'"
    ).fetchall()
    ages = [float(r["age"]) for r in rows]
    for age in ages:
        metrics.FETCH_AGE.observe(age)
    metrics.FETCH_AGE_MAX.set(max(ages, default=0.0))


class Scheduler:
    def __init__(
        self,
        pool: ConnectionPool[Connection[Any]],
        dsn: str,
        poll_interval: float,
        enqueue: Callable[[int], None] = lambda mid: send(FETCH_QUEUE, "fetch_mailbox", mid),
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._poll_interval = poll_interval
        self._enqueue = enqueue
        self.heartbeat = Heartbeat()

    def run_once(self) -> int:
        with self._pool.connection() as conn:
            due = claim_due(conn, self._poll_interval)
        for mailbox_id in due:
            self._enqueue(mailbox_id)
        metrics.SCHEDULER_ENQUEUED.inc(len(due))
        return len(due)

    def _seconds_until_next_due(self) -> float:
        """Sleep until the next mailbox is due rather than a whole tick: the tick added up
        to a second to every poll's latency."""
        try:
            with self._pool.connection() as conn:
                row = conn.execute(
                    "SELECT extract(epoch FROM min(next_fetch_at) - now()) AS s FROM mailboxes"
                    # The same mailboxes claim_due could take: one that is due but leased
                    # would otherwise make this loop spin until its run ends.
                    " WHERE state = 'active' AND (lease_until IS NULL OR lease_until < now())"
                ).fetchone()
        except Exception:  # noqa: BLE001 - the loop's own error handling covers the DB
            return 1.0
        seconds = row["s"] if row and row["s"] is not None else 1.0
        return max(0.02, float(seconds))

    def run_forever(self, stop: threading.Event, tick: float = 1.0) -> None:
        listener = NotificationListener(self._dsn, MAILBOX_CHANNEL)
        gap = claim_gap(self._poll_interval)
        ages_due = time.monotonic()
        while not stop.is_set():
            self.heartbeat.beat()
            try:
                enqueued = self.run_once()
                if time.monotonic() >= ages_due:
                    ages_due = time.monotonic() + FETCH_AGE_EVERY
                    with self._pool.connection() as conn:
                        observe_fetch_age(conn)
            except Exception:
                log.exception("scheduler_error")
                enqueued = 0
            if enqueued < BATCH:
                listener.wait(min(tick, max(gap, self._seconds_until_next_due())))
        listener.close()
