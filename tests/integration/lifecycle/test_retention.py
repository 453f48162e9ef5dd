"""The retention sweeper's loop against a real database: a sweep deletes batch after batch
without waiting between them, then refreshes its gauges and waits for the next round."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import structlog
from psycopg_pool import ConnectionPool

from common.db import create_pool
from services.lifecycle import retention
from services.lifecycle.retention import RetentionSweeper
from tests.support.infra import TestDatabase
from tests.support.mailboxes import insert_mailbox
from tests.support.waiting import wait_until


@pytest.fixture
def pool(clean_database: TestDatabase) -> Iterator[ConnectionPool]:
    pool = create_pool(clean_database.dsn, name="test-retention", max_size=2)
    yield pool
    pool.close()


def _aged_processed_mails(dsn: str, count: int) -> None:
    """``count`` mails fetched and turned into documents eight days ago."""
    mailbox_id = insert_mailbox(dsn)
    with psycopg.connect(dsn) as conn:
        for uid in range(1, count + 1):
            raw = conn.execute(
                "INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, sha256, size,"
                " raw, fetched_at) VALUES (%s, 'INBOX', 1, %s, 'x', 1, 'x',"
                " now() - interval '8 days') RETURNING id",
                (mailbox_id, uid),
            ).fetchone()
            assert raw is not None
            conn.execute(
                "INSERT INTO documents (id, raw_message_id, mailbox_id, mailbox, tenant_id,"
                " state, created_at) VALUES (%s, %s, %s, 'docs@corp.example', 't1',"
                " 'processed', now() - interval '8 days')",
                (uuid.uuid4(), raw[0], mailbox_id),
            )


def _still_stored(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM raw_messages WHERE raw IS NOT NULL").fetchone()
    assert row is not None
    return int(row[0])


def test_a_sweep_goes_batch_after_batch_then_reports_once(
    clean_database: TestDatabase, pool: ConnectionPool
) -> None:
    """Three aged mails with batches of one and a round every minute: all three go within
    seconds (the next batch follows at once while batches come back full), the backlog gauge
    reads 0 and one log line gives the sweep's total."""
    _aged_processed_mails(clean_database.dsn, 3)
    sweeper = RetentionSweeper(pool, retention_days=7, interval=60.0, batch=1)
    retention.DUE.set(-1)
    stop = threading.Event()
    loop = threading.Thread(target=sweeper.run_forever, args=(stop,), daemon=True)
    with structlog.testing.capture_logs() as logs:
        loop.start()
        try:
            wait_until(lambda: retention.DUE._value.get() == 0, 10, what="a finished sweep")
        finally:
            stop.set()
            loop.join(10)
    assert _still_stored(clean_database.dsn) == 0
    swept = [e for e in logs if e["event"] == "retention_swept"]
    assert [(e["raw_mails"], e["failed_documents"]) for e in swept] == [(3, 0)]
