"""Storing raw mail in the real PostgreSQL: what the database refuses in one mail is that
mail's own failure, never the batch's or the mailbox's (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row

from services.fetcher import store
from tests.security.hostile_issue14 import long_message_id_mail, nul_message_id_mail
from tests.support.infra import TestDatabase
from tests.support.mail import invoice_mail

TO = "docs@corp.example"


@pytest.fixture
def conn(clean_database: TestDatabase) -> Iterator[psycopg.Connection]:
    with psycopg.connect(clean_database.dsn, row_factory=dict_row) as connection:
        yield connection


@pytest.fixture
def mailbox_id(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "INSERT INTO mailboxes (address, tenant_id) VALUES (%s, 't1') RETURNING id", (TO,)
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row["id"])


def _stored(conn: psycopg.Connection) -> dict[int, dict]:
    rows = conn.execute("SELECT uid, message_id, raw FROM raw_messages").fetchall()
    return {r["uid"]: r for r in rows}


def test_message_ids_postgresql_would_refuse_are_stored_cleaned(
    conn: psycopg.Connection, mailbox_id: int
) -> None:
    """A 6 KB folded Message-ID (over the b-tree row limit: ProgramLimitExceeded) and one
    with NUL (DataError) are stored in one batch with the mail after them, bytes intact."""
    mails = {
        1: long_message_id_mail(TO),
        2: nul_message_id_mail(TO),
        3: invoice_mail(1, to=TO)[0],
    }
    with conn.transaction():
        raw_ids = store.save_raw_batch(conn, mailbox_id, "INBOX", 7, mails)
    assert sorted(raw_ids) == [1, 2, 3]
    stored = _stored(conn)
    assert {uid: bytes(row["raw"]) for uid, row in stored.items()} == mails
    assert len(stored[1]["message_id"]) == 998
    assert stored[2]["message_id"] == "<abc@attacker.example>"


def test_a_mail_the_database_refuses_is_stored_without_what_it_refused(
    conn: psycopg.Connection, mailbox_id: int
) -> None:
    """Whatever the database refuses in one mail's row (here a CHECK constraint on the
    Message-ID, class 23), the batch is stored one by one: that mail without its
    Message-ID, its raw bytes kept, the others as usual."""
    conn.execute(
        "ALTER TABLE raw_messages ADD CONSTRAINT refuse_me"
        " CHECK (message_id NOT LIKE '%%refuse-me%%')"
    )
    refused = invoice_mail(2, to=TO)[0].replace(b"Message-ID:\n <", b"Message-ID:\n <refuse-me.", 1)
    assert b"refuse-me" in refused
    mails = {1: invoice_mail(1, to=TO)[0], 2: refused, 3: invoice_mail(3, to=TO)[0]}
    try:
        with conn.transaction():
            store.save_raw_batch(conn, mailbox_id, "INBOX", 7, mails)
        stored = _stored(conn)
    finally:
        conn.rollback()
        conn.execute("ALTER TABLE raw_messages DROP CONSTRAINT IF EXISTS refuse_me")
        conn.commit()
    assert {uid: bytes(row["raw"]) for uid, row in stored.items()} == mails
    assert stored[2]["message_id"] is None
    assert stored[1]["message_id"] is not None
    assert stored[3]["message_id"] is not None


def test_an_outage_is_still_an_outage(
    clean_database: TestDatabase, conn: psycopg.Connection, mailbox_id: int
) -> None:
    """A lock the database cannot grant (class 55) is the database's trouble, not the
    mail's: it propagates, to be retried as a whole, and nothing is stored without its
    Message-ID."""
    with psycopg.connect(clean_database.dsn) as locker:
        locker.execute("LOCK TABLE raw_messages IN ACCESS EXCLUSIVE MODE")
        conn.execute("SET lock_timeout = '200ms'")
        with pytest.raises(errors.LockNotAvailable), conn.transaction():
            store.save_raw_batch(conn, mailbox_id, "INBOX", 7, {1: invoice_mail(1, to=TO)[0]})
        locker.rollback()
    conn.rollback()
    assert _stored(conn) == {}
