"""process_message against the real PostgreSQL: corpus, idempotency, failures (issue 5)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from common.db import create_pool
from services.processor.process import ProcessDeps, RawMessageMissing, process_message
from tests.support.events import validate_event
from tests.support.infra import TestDatabase
from tests.support.mail import invoice_mail

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"


@pytest.fixture
def pool(clean_database: TestDatabase) -> Iterator[ConnectionPool]:
    pool = create_pool(clean_database.dsn, name="test-processor", max_size=2)
    yield pool
    pool.close()


@pytest.fixture
def mailbox_id(clean_database: TestDatabase) -> int:
    with psycopg.connect(clean_database.dsn) as conn:
        row = conn.execute(
            "INSERT INTO mailboxes (address, tenant_id) VALUES ('docs@corp.example', 't1')"
            " RETURNING id"
        ).fetchone()
    assert row is not None
    return int(row[0])


def store_raw(dsn: str, mailbox_id: int, uid: int, raw: bytes) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, sha256, size, raw)"
            " VALUES (%s, 'INBOX', 1, %s, %s, %s, %s) RETURNING id",
            (mailbox_id, uid, hashlib.sha256(raw).hexdigest(), len(raw), raw),
        ).fetchone()
    assert row is not None
    return int(row[0])


def rows(dsn: str, sql: str) -> list[dict]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def corpus_files() -> list[Path]:
    assert CORPUS.is_dir(), f"the shared corpus is missing at {CORPUS}"
    return sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in ("README.md", "LICENSE") and not p.name.startswith(".")
    )


def test_every_corpus_mail_ends_as_a_processed_or_failed_document(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """130 real-world mails: each is one document, ``processed`` or ``failed`` with a
    reason, each with exactly one event that matches its schema; none is lost."""
    files = corpus_files()
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    for uid, path in enumerate(files, start=1):
        raw_id = store_raw(clean_database.dsn, mailbox_id, uid, path.read_bytes())
        assert process_message(deps, raw_id) in ("processed", "failed")
    docs = rows(clean_database.dsn, "SELECT state, reason FROM documents")
    assert len(docs) == len(files)
    assert all(d["state"] == "processed" or d["reason"] for d in docs)
    events = rows(clean_database.dsn, "SELECT event FROM outbox")
    assert len(events) == len(files)
    for row in events:
        validate_event(row["event"])


def test_processing_the_same_mail_twice_changes_nothing(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """A redelivered process_message finds the document and writes nothing more."""
    raw, hashes = invoice_mail(1, to="docs@corp.example")
    raw_id = store_raw(clean_database.dsn, mailbox_id, 1, raw)
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    assert process_message(deps, raw_id) == "processed"
    assert process_message(deps, raw_id) == "duplicate"
    assert len(rows(clean_database.dsn, "SELECT id FROM documents")) == 1
    files = rows(clean_database.dsn, "SELECT filename, sha256 FROM document_files")
    assert {f["filename"]: f["sha256"] for f in files} == hashes
    [event] = rows(clean_database.dsn, "SELECT event FROM outbox")
    assert event["event"]["data"]["invoices"][0]["format"] == "cl-dte"


def test_unparseable_mail_is_a_failed_document_with_its_bytes_kept(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """Bytes that are not a mail become a ``failed`` document with a reason and a
    ``document.failed`` event; the raw bytes stay in raw_messages."""
    garbage = bytes(range(256)) * 10
    raw_id = store_raw(clean_database.dsn, mailbox_id, 1, garbage)
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    assert process_message(deps, raw_id) == "failed"
    [doc] = rows(clean_database.dsn, "SELECT state, reason FROM documents")
    assert doc["state"] == "failed"
    assert doc["reason"]
    [event] = rows(clean_database.dsn, "SELECT event FROM outbox")
    assert event["event"]["type"] == "bandeja.document.failed"
    validate_event(event["event"])
    [kept] = rows(clean_database.dsn, "SELECT raw FROM raw_messages")
    assert bytes(kept["raw"]) == garbage


def test_a_message_for_a_missing_raw_mail_is_permanent(pool: ConnectionPool) -> None:
    """A processing message for a raw id that does not exist is a permanent error
    (dead-lettered at once), not something to retry for days."""
    with pytest.raises(RawMessageMissing):
        process_message(ProcessDeps(pool=pool, max_message_bytes=1), 999_999)
