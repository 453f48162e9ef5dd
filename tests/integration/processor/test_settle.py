"""Mail whose processing used up its retries is settled, and can be reprocessed: against the
real PostgreSQL, with a CRM that refuses documents (a trigger a DBA might add)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import dramatiq
import pika
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from common.broker import PROCESS_QUEUE, setup_broker
from common.db import connect
from services.processor.errors import SendInterrupted
from services.processor.process import ProcessDeps, process_messages
from services.processor.reprocess import reprocess
from services.processor.settle import settle
from services.processor.store import failed_raw_ids, forget_failed_documents, stranded_raw_ids
from tests.integration.processor.stored import rows, store_raw
from tests.support.events import validate_event
from tests.support.infra import TestDatabase, TestVhost
from tests.support.mail import invoice_mail
from tests.support.services import free_port

# Refuses every document except a settled failure: what a broken CRM looks like to the
# processor, including for the `failed` document it writes when one mail is refused.
REFUSE_UNSETTLED = (
    "CREATE FUNCTION refuse_unsettled() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN IF NEW.reason IS NULL OR NEW.reason NOT LIKE 'processing failed%%' THEN"
    " RAISE EXCEPTION 'the CRM is refusing documents'; END IF; RETURN NEW; END $$;"
    " CREATE TRIGGER refuse_unsettled BEFORE INSERT ON documents"
    " FOR EACH ROW EXECUTE FUNCTION refuse_unsettled()"
)


@pytest.fixture
def refusing_crm(clean_database: TestDatabase) -> Iterator[None]:
    """The trigger, dropped afterwards (the test database outlives the test)."""
    with psycopg.connect(clean_database.dsn) as conn:
        conn.execute(REFUSE_UNSETTLED)
    yield
    with psycopg.connect(clean_database.dsn) as conn:
        conn.execute("DROP TRIGGER refuse_unsettled ON documents")
        conn.execute("DROP FUNCTION refuse_unsettled")


def _stored_batch(dsn: str, mailbox_id: int, count: int) -> tuple[list[int], list[bytes]]:
    mails = [invoice_mail(n, to="docs@corp.example")[0] for n in range(count)]
    return [store_raw(dsn, mailbox_id, n, m) for n, m in enumerate(mails, 1)], mails


@pytest.mark.usefixtures("refusing_crm")
def test_mails_that_keep_failing_end_as_failed_documents_with_their_bytes_kept(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """A batch the CRM keeps refusing raises (dramatiq retries it); once its retries are
    used up, settling gives each mail a `failed` document saying so, with its event, and
    the raw bytes stay for reprocessing. Nothing of the batch is left without a document."""
    dsn = clean_database.dsn
    raw_ids, mails = _stored_batch(dsn, mailbox_id, 3)
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    with pytest.raises(psycopg.errors.RaiseException):
        process_messages(deps, raw_ids)
    assert rows(dsn, "SELECT id FROM documents") == []

    outcomes = settle(deps, raw_ids, last_error="RaiseException", attempts=9)

    assert outcomes == dict.fromkeys(raw_ids, "failed")
    docs = rows(dsn, "SELECT raw_message_id, state, reason, subject FROM documents")
    assert sorted(d["raw_message_id"] for d in docs) == raw_ids
    for doc in docs:
        assert doc["reason"].startswith("processing failed 9 times (last error: RaiseException)")
        assert doc["subject"]  # the envelope is read even though the mail was not processed
    events = [r["event"] for r in rows(dsn, "SELECT event FROM outbox")]
    assert [e["type"] for e in events] == ["bandeja.document.failed"] * 3
    for event in events:
        validate_event(event)
    kept = rows(dsn, "SELECT raw FROM raw_messages ORDER BY id")
    assert [bytes(k["raw"]) for k in kept] == mails


def test_settling_processes_normally_when_the_cause_has_gone(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """Each mail gets a last attempt of its own before it is marked failed: if the CRM
    accepts documents again by then, the mails become ordinary processed documents."""
    dsn = clean_database.dsn
    raw_ids, _ = _stored_batch(dsn, mailbox_id, 2)
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)

    outcomes = settle(deps, raw_ids, last_error="OperationalError", attempts=9)

    assert outcomes == dict.fromkeys(raw_ids, "processed")
    states = rows(dsn, "SELECT state, reason FROM documents")
    assert states == [{"state": "processed", "reason": None}] * 2


def test_a_mail_that_timed_out_is_not_parsed_again(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """After a time-limit kill the mail would only time out again: it is settled as
    failed from its headers, without another parse."""
    dsn = clean_database.dsn
    raw_ids, _ = _stored_batch(dsn, mailbox_id, 1)
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)

    assert settle(deps, raw_ids, last_error="TimeLimitExceeded", attempts=3) == {
        raw_ids[0]: "failed"
    }
    [doc] = rows(dsn, "SELECT reason, invoices FROM documents")
    assert "TimeLimitExceeded" in doc["reason"]
    assert doc["invoices"] == []  # the invoice attachment was never looked at


def test_a_settled_mail_with_a_document_already_is_left_alone(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """Mails of the dead batch that did get their document keep it, unchanged."""
    dsn = clean_database.dsn
    raw_ids, _ = _stored_batch(dsn, mailbox_id, 1)
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    process_messages(deps, raw_ids)

    assert settle(deps, raw_ids, last_error="TimeLimitExceeded", attempts=9) == {
        raw_ids[0]: "duplicate"
    }
    assert rows(dsn, "SELECT state FROM documents") == [{"state": "processed"}]


def test_reprocess_finds_failed_and_stranded_mails_and_forgets_only_failed_documents(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """`bandeja reprocess` picks mails with a failed document and mails left without any;
    deleting makes room for the new document and keeps processed ones untouched."""
    dsn = clean_database.dsn
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    raw_ids, _ = _stored_batch(dsn, mailbox_id, 3)
    processed, failed, stranded = raw_ids
    process_messages(deps, [processed])
    settle(deps, [failed], last_error="TimeLimitExceeded", attempts=9)

    with connect(dsn) as conn:
        assert failed_raw_ids(conn, None) == [failed]
        assert failed_raw_ids(conn, "someone-else@corp.example") == []
        assert stranded_raw_ids(conn, 0, None) == [stranded]
        assert stranded_raw_ids(conn, 60, None) == []  # stored just now: maybe still queued
        with conn.transaction():
            assert forget_failed_documents(conn, [processed, failed]) == 1

    assert rows(dsn, "SELECT raw_message_id FROM documents") == [{"raw_message_id": processed}]
    assert process_messages(deps, [failed]) == {failed: "processed"}


def _reprocess_failed(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return reprocess(conn, failed=True, stranded_minutes=None, mailbox=None, dry_run=False)


def test_reprocess_deletes_for_good_before_the_mails_reach_a_processor(
    pool: ConnectionPool, clean_database: TestDatabase, vhost: TestVhost, mailbox_id: int
) -> None:
    """When the processing message is on the queue, every processor already sees the
    failed documents gone; if it still saw them it would take the mails for done."""
    dsn = clean_database.dsn
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    raw_ids, _ = _stored_batch(dsn, mailbox_id, 2)
    settle(deps, raw_ids, last_error="TimeLimitExceeded", attempts=9)
    vhost.purge_work_queues()
    previous = dramatiq.get_broker()
    setup_broker(vhost.url)
    try:
        with connect(dsn) as conn:
            summary = _reprocess_failed(conn)
            # Still inside the command's connection, seen from another one:
            assert rows(dsn, "SELECT id FROM documents") == []
    finally:
        dramatiq.get_broker().close()
        dramatiq.set_broker(previous)
    assert summary == {"failed": 2, "stranded": 0, "messages": 1, "failed_documents_deleted": 2}
    with pika.BlockingConnection(pika.URLParameters(vhost.url)) as connection:
        _, _, body = connection.channel().basic_get(PROCESS_QUEUE, auto_ack=True)
    assert body is not None
    assert json.loads(body)["args"] == [raw_ids]


def test_reprocess_cut_off_by_the_broker_says_so_and_leaves_mails_it_can_find_again(
    pool: ConnectionPool, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """A broker that fails after the failed documents were deleted stops the run with how
    much was sent; the mails not sent are exactly the ones `--stranded-minutes 0` finds."""
    dsn = clean_database.dsn
    deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
    raw_ids, _ = _stored_batch(dsn, mailbox_id, 2)
    settle(deps, raw_ids, last_error="TimeLimitExceeded", attempts=9)
    previous = dramatiq.get_broker()
    setup_broker(f"amqp://guest:guest@127.0.0.1:{free_port()}/?connection_attempts=1")
    try:
        with connect(dsn) as conn, pytest.raises(SendInterrupted) as interrupted:
            _reprocess_failed(conn)
    finally:
        dramatiq.set_broker(previous)
    assert (interrupted.value.sent, interrupted.value.total) == (0, 1)
    assert rows(dsn, "SELECT id FROM documents") == []
    with connect(dsn) as conn:
        assert stranded_raw_ids(conn, 0, None) == raw_ids
