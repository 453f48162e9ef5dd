"""Stored raw mails and CRM rows for the processor's integration tests."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg.rows import dict_row


def store_raw(dsn: str, mailbox_id: int, uid: int, raw: bytes) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, sha256, size, raw)"
            " VALUES (%s, 'INBOX', 1, %s, %s, %s, %s) RETURNING id",
            (mailbox_id, uid, hashlib.sha256(raw).hexdigest(), len(raw), raw),
        ).fetchone()
    assert row is not None
    return int(row[0])


def rows(dsn: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()
