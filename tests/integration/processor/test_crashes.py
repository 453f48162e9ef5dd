"""A mail that kills the processor does not become a crash loop (crashes.py): against the
real PostgreSQL. The marks a dead process leaves are the ones `start_processing` writes;
tests/e2e/test_pipeline.py kills a real processor."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from common.db import connect
from services.processor import crashes, store
from services.processor.process import ProcessDeps, process_messages
from services.processor.settle import settle
from tests.integration.processor.stored import rows, store_raw
from tests.integration.processor.test_settle import REFUSE_UNSETTLED
from tests.support.infra import TestDatabase
from tests.support.mail import invoice_mail


def _stored(dsn: str, mailbox_id: int, count: int) -> list[int]:
    mails = [invoice_mail(n, to="docs@corp.example")[0] for n in range(count)]
    return [store_raw(dsn, mailbox_id, n, m) for n, m in enumerate(mails, 1)]


def _died_while_processing(dsn: str, raw_ids: list[int]) -> None:
    """What a processor killed mid-batch leaves: its mails marked, no documents."""
    with connect(dsn) as conn:
        store.start_processing(conn, raw_ids)


def _died_on(dsn: str, raw_id: int, *, earlier_deaths: int) -> None:
    """A mail whose earlier deaths were counted, and on which a processor died again."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE raw_messages SET processing_crashes = %s WHERE id = %s",
            (earlier_deaths, raw_id),
        )
    _died_while_processing(dsn, [raw_id])


def _crash_counts(dsn: str) -> dict[int, int]:
    found = rows(dsn, "SELECT id, processing_crashes FROM raw_messages ORDER BY id")
    return {r["id"]: r["processing_crashes"] for r in found}


@pytest.fixture
def deps(pool: ConnectionPool) -> ProcessDeps:
    return ProcessDeps(pool=pool, max_message_bytes=50_000_000)


def test_a_death_mid_batch_costs_the_batch_nothing(
    deps: ProcessDeps, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """The redelivered batch of a dead processor is processed (one mail at a time); each
    mail it was on has one death counted, far from the limit."""
    dsn = clean_database.dsn
    raw_ids = _stored(dsn, mailbox_id, 3)
    _died_while_processing(dsn, raw_ids)

    outcomes = process_messages(deps, raw_ids, redelivered=True)

    assert outcomes == dict.fromkeys(raw_ids, "processed")
    assert _crash_counts(dsn) == dict.fromkeys(raw_ids, 1)


def test_the_mail_that_killed_the_processor_three_times_is_failed_unparsed(
    deps: ProcessDeps, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """At the third death on one mail, that mail becomes a `failed` document from its
    headers (with its event), and the mails stored with it are processed as usual."""
    dsn = clean_database.dsn
    before, killer, after = _stored(dsn, mailbox_id, 3)
    _died_on(dsn, killer, earlier_deaths=crashes.LIMIT - 1)

    outcomes = process_messages(deps, [before, killer, after], redelivered=True)

    assert outcomes == {before: "processed", killer: "failed", after: "processed"}
    [doc] = rows(dsn, "SELECT reason, subject, invoices FROM documents WHERE state = 'failed'")
    assert doc["reason"] == crashes.reason(crashes.LIMIT)
    assert doc["subject"]  # read from the headers
    assert doc["invoices"] == []  # the attachments were never parsed
    events = [r["event"]["type"] for r in rows(dsn, "SELECT event FROM outbox")]
    assert sorted(events) == ["bandeja.document.failed", *["bandeja.document.processed"] * 2]


def test_an_ordinary_retry_counts_no_death(
    deps: ProcessDeps, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """Marks left behind by an attempt that could not clear them (the database went away)
    count nothing when the retry comes as a new message, as dramatiq's retries do."""
    dsn = clean_database.dsn
    raw_ids = _stored(dsn, mailbox_id, 2)
    _died_while_processing(dsn, raw_ids)

    assert process_messages(deps, raw_ids) == dict.fromkeys(raw_ids, "processed")
    assert _crash_counts(dsn) == dict.fromkeys(raw_ids, 0)


def test_an_attempt_that_fails_in_python_clears_its_marks(
    deps: ProcessDeps, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """A batch the CRM refuses raises and is retried; it leaves no mark, so even a
    redelivery after it (a RabbitMQ restart) counts no death."""
    dsn = clean_database.dsn
    raw_ids = _stored(dsn, mailbox_id, 2)
    with psycopg.connect(dsn) as conn:
        conn.execute(REFUSE_UNSETTLED)
    try:
        with pytest.raises(psycopg.errors.RaiseException):
            process_messages(deps, raw_ids)
    finally:
        with psycopg.connect(dsn) as conn:
            conn.execute("DROP TRIGGER refuse_unsettled ON documents")
            conn.execute("DROP FUNCTION refuse_unsettled")
    assert rows(dsn, "SELECT id FROM raw_messages WHERE processing_since IS NOT NULL") == []

    assert process_messages(deps, raw_ids, redelivered=True) == dict.fromkeys(raw_ids, "processed")
    assert _crash_counts(dsn) == dict.fromkeys(raw_ids, 0)


def test_reprocessing_a_mail_failed_for_deaths_starts_its_count_again(
    deps: ProcessDeps, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """Once the cause is fixed, `bandeja reprocess --failed` gives the mail a new try:
    it is parsed, not failed again at once."""
    dsn = clean_database.dsn
    [killer] = _stored(dsn, mailbox_id, 1)
    _died_on(dsn, killer, earlier_deaths=crashes.LIMIT - 1)
    assert process_messages(deps, [killer], redelivered=True) == {killer: "failed"}

    with connect(dsn) as conn:
        store.forget_failed_documents(conn, [killer])
    assert process_messages(deps, [killer]) == {killer: "processed"}


def test_a_last_attempt_that_kills_the_processor_cannot_loop_either(
    deps: ProcessDeps, clean_database: TestDatabase, mailbox_id: int
) -> None:
    """Settling gives a mail one more parse; if the processor dies there, the redelivered
    settling message counts the death like any other, and the third one ends it."""
    dsn = clean_database.dsn
    [killer] = _stored(dsn, mailbox_id, 1)
    _died_on(dsn, killer, earlier_deaths=crashes.LIMIT - 1)

    outcome = settle(deps, [killer], last_error="RaiseException", attempts=9, redelivered=True)

    assert outcome == {killer: "failed"}
    [doc] = rows(dsn, "SELECT reason FROM documents")
    assert doc["reason"] == crashes.reason(crashes.LIMIT)
