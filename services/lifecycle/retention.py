"""Deleting raw mail once its document has aged past ``BANDEJA_RAW_RETENTION_DAYS``.

What goes: the raw bytes (``raw``, ``headers``, the chunks of a large mail) of every mail
whose document was written more than the retention ago, and the ``failed`` documents
among them (a failed document is only useful while its mail can be sent through again).
What stays: the mail's row, as a tombstone the fetch's exactly-once guards still match
(docs/architecture.md#lifecycle), and processed or too-large documents, which are the
CRM's records. A mail without a document is never touched: nothing is lost.

Batches are short transactions that claim their rows with ``FOR UPDATE SKIP LOCKED``:
relay replicas sweep side by side without waiting on each other or on a processor, and
no lock outlives one batch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.health import Heartbeat
from common.loops import Loop

log = structlog.get_logger(__name__)

BATCH = 200

DELETED = Counter(
    "bandeja_retention_deleted",
    "Stored data deleted because it outlived BANDEJA_RAW_RETENTION_DAYS, by kind",
    ["kind"],
)
DUE = Gauge(
    "bandeja_retention_due",
    "Raw mails past the retention whose bytes are still stored (waiting for the sweeper)",
)
KEPT_UNFINISHED = Gauge(
    "bandeja_retention_kept_without_document",
    "Raw mails older than the retention kept because they have no document yet",
)
RAW_MAIL = "raw_mail"
FAILED_DOCUMENT = "failed_document"
for _kind in (RAW_MAIL, FAILED_DOCUMENT):
    DELETED.labels(_kind)

# A document is written after its mail was fetched, so only mails fetched before the
# cutoff can be due: the partial index raw_messages_kept narrows the scan to those.
_SWEEP_BATCH = """
WITH due AS (
    SELECT r.id FROM raw_messages r JOIN documents d ON d.raw_message_id = r.id
    WHERE r.raw_deleted_at IS NULL AND r.fetched_at < %(cutoff)s AND d.created_at < %(cutoff)s
    ORDER BY r.fetched_at
    LIMIT %(batch)s
    FOR UPDATE OF r SKIP LOCKED
), chunks AS (
    DELETE FROM raw_message_chunks c USING due WHERE c.raw_id = due.id
), failed AS (
    DELETE FROM documents d USING due WHERE d.raw_message_id = due.id AND d.state = 'failed'
    RETURNING d.id
), emptied AS (
    UPDATE raw_messages r SET raw = NULL, headers = NULL, chunked = false,
        raw_deleted_at = now()
    FROM due WHERE r.id = due.id
    RETURNING r.id
)
SELECT (SELECT count(*) FROM emptied) AS raw_mails, (SELECT count(*) FROM failed) AS failed
"""

_BACKLOG = """
SELECT count(*) FILTER (WHERE d.created_at < %(cutoff)s) AS due,
       count(*) FILTER (WHERE d.id IS NULL) AS without_document
FROM raw_messages r LEFT JOIN documents d ON d.raw_message_id = r.id
WHERE r.raw_deleted_at IS NULL AND r.fetched_at < %(cutoff)s
"""


@dataclass(frozen=True)
class Swept:
    raw_mails: int
    failed_documents: int

    def __add__(self, other: Swept) -> Swept:
        return Swept(
            self.raw_mails + other.raw_mails, self.failed_documents + other.failed_documents
        )


def sweep_batch(conn: Connection[Any], retention: timedelta, batch: int = BATCH) -> Swept:
    """Delete one batch of aged raw mail, in its own transaction."""
    with conn.transaction():
        row = conn.execute(
            _SWEEP_BATCH,
            {"cutoff": _cutoff(conn, retention), "batch": batch},
        ).fetchone()
    assert row is not None
    swept = Swept(raw_mails=row["raw_mails"], failed_documents=row["failed"])
    DELETED.labels(RAW_MAIL).inc(swept.raw_mails)
    DELETED.labels(FAILED_DOCUMENT).inc(swept.failed_documents)
    return swept


def report_backlog(conn: Connection[Any], retention: timedelta) -> None:
    row = conn.execute(_BACKLOG, {"cutoff": _cutoff(conn, retention)}).fetchone()
    assert row is not None
    DUE.set(row["due"])
    KEPT_UNFINISHED.set(row["without_document"])


def _cutoff(conn: Connection[Any], retention: timedelta) -> Any:
    # The database's clock, the one that stamped created_at and fetched_at.
    row = conn.execute("SELECT now() - %s AS cutoff", (retention,)).fetchone()
    assert row is not None
    return row["cutoff"]


class RetentionSweeper:
    """A loop in the relay process: a sweep every ``interval`` seconds, batch after batch
    until nothing aged is left (or the process is asked to stop)."""

    def __init__(
        self,
        pool: ConnectionPool[Connection[Any]],
        retention_days: float,
        interval: float,
        batch: int = BATCH,
    ) -> None:
        self._pool = pool
        self._retention = timedelta(days=retention_days)
        self._interval = interval
        self._batch = batch
        # A sweep of a large backlog takes a while; liveness allows several intervals.
        self.heartbeat = Heartbeat(max_age=max(120.0, 3 * interval))
        self._swept = Swept(0, 0)  # so far in this sweep

    def sweep_next_batch(self) -> bool:
        """One batch; True while a full one went (more aged mail is likely waiting). The
        last batch of a sweep also refreshes the backlog gauges and logs the sweep's total."""
        with self._pool.connection() as conn:
            swept = sweep_batch(conn, self._retention, self._batch)
            self._swept += swept
            if swept.raw_mails >= self._batch:
                return True
            report_backlog(conn, self._retention)
        total, self._swept = self._swept, Swept(0, 0)
        if total.raw_mails:
            log.info(
                "retention_swept",
                raw_mails=total.raw_mails,
                failed_documents=total.failed_documents,
            )
        return False

    def run_forever(self, stop: threading.Event) -> None:
        Loop(
            "retention_sweep",
            work=self.sweep_next_batch,
            idle_wait=self._interval,
            heartbeat=self.heartbeat,
            # The database may be away: the sweep is tried again next round.
            error_pause=self._interval,
            error_level="warning",
            error_traceback=False,
        ).run(stop)
