"""Stored raw mails and CRM rows for the processor's integration tests."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg.rows import dict_row

from services.fetcher.store.raw_mail import write_pages


def store_raw(dsn: str, mailbox_id: int, uid: int, raw: bytes) -> int:
    """One stored mail, in pages as the fetcher stores it (no Message-ID guard: a test may
    store the same bytes twice)."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        row = cursor.execute(
            "INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, sha256, size,"
            " chunked) VALUES (%s, 'INBOX', 1, %s, %s, %s, true) RETURNING id",
            (mailbox_id, uid, hashlib.sha256(raw).hexdigest(), len(raw)),
        ).fetchone()
        assert row is not None
        write_pages(cursor, [(int(row[0]), 0, raw)])
    return int(row[0])


def rows(dsn: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()
