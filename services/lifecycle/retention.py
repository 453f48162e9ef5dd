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

    def sweep(self, stop: threading.Event) -> Swept:
        raw_mails = failed = 0
        while not stop.is_set():
            self.heartbeat.beat()
            with self._pool.connection() as conn:
                swept = sweep_batch(conn, self._retention, self._batch)
            raw_mails += swept.raw_mails
            failed += swept.failed_documents
            if swept.raw_mails < self._batch:
                break
        with self._pool.connection() as conn:
            report_backlog(conn, self._retention)
        if raw_mails:
            log.info("retention_swept", raw_mails=raw_mails, failed_documents=failed)
        return Swept(raw_mails, failed)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.heartbeat.beat()
            try:
                self.sweep(stop)
            except Exception as exc:  # noqa: BLE001 - the sweeper outlives database outages
                log.warning(
                    "retention_sweep_failed", error_type=type(exc).__name__, error=str(exc)[:200]
                )
            stop.wait(self._interval)
