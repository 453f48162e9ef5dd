"""process_message(s) against the real PostgreSQL: both mail corpora, idempotency,
failures, batches (issues 5 and 8)."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from services.processor.budget import MemoryBudget
from services.processor.errors import RawMessageMissing
from services.processor.process import ProcessDeps, process_message, process_messages
from tests.integration.processor.stored import rows, store_raw
from tests.support.corpus import CORPORA, corpus_files
from tests.support.events import validate_event
from tests.support.infra import TestDatabase
from tests.support.mail import invoice_mail


@pytest.mark.parametrize("corpus", CORPORA)
def test_every_corpus_mail_ends_as_a_processed_or_failed_document(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int, corpus: str
) -> None:
    """The repository's hard cases and the 127 real-world mails, in batches of 20 (the
    fetcher sends batches of up to BANDEJA_FETCH_BATCH_SIZE): each is one document,
    ``processed`` or ``failed`` with a reason, each with exactly one event that matches its
    schema; none is lost."""
    files = corpus_files(corpus)
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    raw_ids = [
        store_raw(clean_database.dsn, mailbox_id, uid, path.read_bytes())
        for uid, path in enumerate(files, start=1)
    ]
    for start in range(0, len(raw_ids), 20):
        outcomes = process_messages(deps, raw_ids[start : start + 20])
        assert set(outcomes.values()) <= {"processed", "failed"}
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


def test_a_mail_the_crm_refuses_does_not_hold_back_its_batch(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """When the CRM rejects one parsed mail (here a rule a DBA added), the others of the
    batch are still written, and the rejected one is a ``failed`` document with a reason
    and an event, its raw bytes kept, instead of taking the batch to the dead letters."""
    with psycopg.connect(clean_database.dsn) as conn:
        conn.execute(
            "CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF NEW.subject LIKE '%%REFUSE%%' THEN"
            " RAISE check_violation USING MESSAGE = 'subject not allowed'; END IF;"
            " RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse_marked BEFORE INSERT ON documents"
            " FOR EACH ROW EXECUTE FUNCTION refuse_marked()"
        )
    mails = [invoice_mail(n, to="docs@corp.example")[0] for n in range(3)]
    mails[1] = mails[1].replace(b"Subject: ", b"Subject: REFUSE ", 1)
    raw_ids = [store_raw(clean_database.dsn, mailbox_id, n, m) for n, m in enumerate(mails, 1)]
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)

    outcomes = process_messages(deps, raw_ids)

    assert outcomes == {raw_ids[0]: "processed", raw_ids[1]: "failed", raw_ids[2]: "processed"}
    docs = rows(clean_database.dsn, "SELECT raw_message_id, state, reason FROM documents")
    refused = next(d for d in docs if d["raw_message_id"] == raw_ids[1])
    assert "refused" in refused["reason"]
    events = rows(clean_database.dsn, "SELECT event FROM outbox ORDER BY created_at")
    assert sorted(e["event"]["type"] for e in events) == [
        "bandeja.document.failed",
        "bandeja.document.processed",
        "bandeja.document.processed",
    ]
    for row in events:
        validate_event(row["event"])
    [kept] = rows(clean_database.dsn, f"SELECT raw FROM raw_messages WHERE id = {raw_ids[1]}")
    assert bytes(kept["raw"]) == mails[1]


def test_a_program_limit_the_crm_hits_on_one_mail_is_that_mails_failure(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """PostgreSQL files "program limit exceeded" (SQLSTATE 54, here an index row over the
    b-tree limit) under OperationalError, beside real outages; it is the mail's own
    failure, classified by SQLSTATE class: the batch is written, that mail as ``failed``,
    instead of the batch being retried until it is settled."""
    with psycopg.connect(clean_database.dsn) as conn:
        conn.execute("CREATE INDEX documents_by_subject ON documents (subject)")
    try:
        mails = [invoice_mail(n, to="docs@corp.example")[0] for n in range(3)]
        # Random, so that compression cannot bring the index row under the limit.
        subject = "Subject: " + secrets.token_hex(3_000) + " "
        mails[1] = mails[1].replace(b"Subject: ", subject.encode(), 1)
        raw_ids = [store_raw(clean_database.dsn, mailbox_id, n, m) for n, m in enumerate(mails, 1)]
        deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)

        outcomes = process_messages(deps, raw_ids)
    finally:
        with psycopg.connect(clean_database.dsn) as conn:
            conn.execute("DROP INDEX documents_by_subject")
    assert outcomes == {raw_ids[0]: "processed", raw_ids[1]: "failed", raw_ids[2]: "processed"}
    docs = rows(clean_database.dsn, "SELECT raw_message_id, reason FROM documents")
    refused = next(d for d in docs if d["raw_message_id"] == raw_ids[1])
    assert "ProgramLimitExceeded" in refused["reason"]


def test_a_batch_with_a_missing_raw_mail_writes_the_others_then_fails_permanently(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """A batch naming a mail that does not exist (deleted with its mailbox) still turns
    the existing mails into documents; the message then fails permanently (dead letter,
    visible), and replaying it writes nothing twice."""
    raw_ids = [
        store_raw(clean_database.dsn, mailbox_id, n, invoice_mail(n, to="docs@corp.example")[0])
        for n in (1, 2)
    ]
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    with pytest.raises(RawMessageMissing, match="999999"):
        process_messages(deps, [raw_ids[0], 999_999, raw_ids[1]])
    assert len(rows(clean_database.dsn, "SELECT id FROM documents")) == 2
    with pytest.raises(RawMessageMissing):
        process_messages(deps, [raw_ids[0], 999_999, raw_ids[1]])
    assert len(rows(clean_database.dsn, "SELECT id FROM outbox")) == 2


def test_large_batches_wait_for_the_parse_budget_and_all_complete(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """Four threads, four 3 MB mails, a budget that holds one at a time: they take turns
    (parsing peaks at about 8x a mail's size) and every mail ends as a document."""
    mails = [invoice_mail(n, to="docs@corp.example", pdf_size=2_000_000)[0] for n in range(4)]
    raw_ids = [store_raw(clean_database.dsn, mailbox_id, n, m) for n, m in enumerate(mails, 1)]
    budget = MemoryBudget(len(mails[0]) + 1000)
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000, budget=budget)
    pool.resize(min_size=1, max_size=4)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.005):
            seen.append(budget.in_use)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(4) as threads:
        outcomes = list(threads.map(lambda raw_id: process_messages(deps, [raw_id]), raw_ids))
    done.set()
    watcher.join()

    assert outcomes == [{raw_id: "processed"} for raw_id in raw_ids]
    assert 0 < max(seen) <= budget.limit_bytes  # one mail's bytes at a time, never two
    assert budget.in_use == 0
    docs = rows(clean_database.dsn, "SELECT state FROM documents")
    assert docs == [{"state": "processed"}] * 4
