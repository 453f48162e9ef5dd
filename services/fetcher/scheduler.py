"""Enqueues a fetch for each due mailbox. Safe to run in every fetcher replica.

The claim (store/schedule.py) moves ``next_fetch_at`` forward as it takes the due rows, so
two schedulers never enqueue the same due mailbox twice; the per-mailbox lease in the
fetch run is the second guard.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.broker import FETCH_MAILBOX_ACTOR, FETCH_QUEUE, send
from common.db import MAILBOX_CHANNEL, NotificationListener
from common.health import Heartbeat
from common.loops import Loop
from services.fetcher import metrics
from services.fetcher.store import schedule

log = structlog.get_logger(__name__)

BATCH = 500
# Every active mailbox's poll age is read this often (one scan of the table): per cycle
# it was, and cycles grow with the fleet, so 10,000 mailboxes cost a core in this alone.
FETCH_AGE_EVERY = 15.0
# The longest wait between two claims, whatever the next due mailbox says: a mailbox
# added or made due without a NOTIFY (one lost while the listener reconnected) waits no
# longer. Also the pause after an error (the database away).
TICK = 1.0


def claim_gap(poll_interval: float) -> float:
    """Least pause between two claims that found less than a batch: the mailboxes that
    fall due meanwhile are claimed (and enqueued) together, one statement for all.

    1/120 of the interval keeps a poll at most that share late (0.5 s at a minute), and
    instead of one claim per due mailbox (167 a second at 10,000 mailboxes a minute) the
    scheduler runs two a second. A NOTIFY (a connect, a wake-up) still claims at once.
    """
    return min(0.5, max(0.02, poll_interval / 120))


def observe_fetch_age(conn: Connection[Any]) -> None:
    ages = schedule.poll_ages(conn)
    for age in ages:
        metrics.FETCH_AGE.observe(age)
    metrics.FETCH_AGE_MAX.set(max(ages, default=0.0))


def _enqueue_fetch(mailbox_id: int) -> None:
    send(FETCH_QUEUE, FETCH_MAILBOX_ACTOR, mailbox_id)


class Scheduler:
    def __init__(
        self,
        pool: ConnectionPool[Connection[Any]],
        dsn: str,
        poll_interval: float,
        enqueue: Callable[[int], None] = _enqueue_fetch,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._poll_interval = poll_interval
        self._enqueue = enqueue
        self._gap = claim_gap(poll_interval)
        self._ages_due = time.monotonic()
        self.heartbeat = Heartbeat()

    def run_once(self) -> int:
        with self._pool.connection() as conn:
            due = schedule.claim_due(conn, self._poll_interval, BATCH)
        for mailbox_id in due:
            self._enqueue(mailbox_id)
        metrics.SCHEDULER_ENQUEUED.inc(len(due))
        return len(due)

    def turn(self) -> bool:
        """One claim, and the poll-age scan when it is due; True when a full batch went
        out (more is likely due now)."""
        enqueued = self.run_once()
        if time.monotonic() >= self._ages_due:
            self._ages_due = time.monotonic() + FETCH_AGE_EVERY
            with self._pool.connection() as conn:
                observe_fetch_age(conn)
        return enqueued >= BATCH

    def _seconds_until_next_due(self) -> float:
        """Sleep until the next mailbox is due rather than a whole tick: the tick added up
        to a second to every poll's latency."""
        try:
            with self._pool.connection() as conn:
                seconds = schedule.seconds_until_next_due(conn)
        except Exception:  # noqa: BLE001 - the next claim meets the outage and the loop answers it
            return TICK
        return TICK if seconds is None else max(0.02, seconds)

    def run_forever(self, stop: threading.Event, tick: float = TICK) -> None:
        listener = NotificationListener(self._dsn, MAILBOX_CHANNEL)

        def until_next_claim(longest: float) -> None:
            # A NOTIFY claims at once; otherwise the next due mailbox, but never sooner
            # than the claim gap (due mailboxes are batched) nor later than the tick.
            listener.wait(min(longest, max(self._gap, self._seconds_until_next_due())))

        loop = Loop(
            "scheduler",
            work=self.turn,
            idle_wait=tick,
            wake=until_next_claim,
            heartbeat=self.heartbeat,
            error_pause=tick,
            error_event="scheduler_error",
        )
        try:
            loop.run(stop)
        finally:
            listener.close()
