"""Raw mail in pages (migration 0015), in the real PostgreSQL: the fetcher writes each mail
as pages of at most PAGE_BYTES, the processor and ``raw_bytes()`` give back its exact
bytes, and mails stored before the migration (inline, or in 1 MiB chunks) still read."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row

from services.fetcher import store
from services.fetcher.store.raw_mail import PAGE_BYTES
from services.processor import store as processor_store
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


def _mail_of(size: int, n: int) -> bytes:
    """A mail of exactly ``size`` bytes (its body padded), distinct for each ``n``."""
    head = f"Message-ID: <m{n}@corp.example>\r\nSubject: {n}\r\n\r\n".encode()
    return head + bytes((n + i) % 251 for i in range(max(size - len(head), 0)))


def _pages(conn: psycopg.Connection, raw_id: int) -> list[int]:
    rows = conn.execute(
        "SELECT octet_length(data) AS n FROM raw_message_chunks WHERE raw_id = %s ORDER BY seq",
        (raw_id,),
    ).fetchall()
    return [r["n"] for r in rows]


def _raw_bytes(conn: psycopg.Connection, raw_id: int) -> bytes | None:
    row = conn.execute(
        "SELECT r.raw_bytes AS raw, r.raw IS NULL AS no_inline FROM raw_messages r"
        " WHERE id = %s",
        (raw_id,),
    ).fetchone()
    assert row is not None
    assert row["no_inline"]
    return None if row["raw"] is None else bytes(row["raw"])


def test_a_batch_is_stored_in_pages_that_give_back_every_byte(
    conn: psycopg.Connection, mailbox_id: int
) -> None:
    """Mails around the page size and a 60 KB invoice: each is in pages of PAGE_BYTES but
    the last, and reads back exact through raw_bytes() and the processor's load."""
    sizes = [100, PAGE_BYTES - 1, PAGE_BYTES, PAGE_BYTES + 1, 3 * PAGE_BYTES + 17]
    mails = {uid: _mail_of(size, uid) for uid, size in enumerate(sizes, start=1)}
    mails[len(sizes) + 1] = invoice_mail(1, to=TO)[0]
    with conn.transaction():
        raw_ids = store.save_raw_batch(conn, mailbox_id, "INBOX", 1, mails)
    for uid, data in mails.items():
        pages = _pages(conn, raw_ids[uid])
        assert pages[:-1] == [PAGE_BYTES] * (len(pages) - 1)
        assert 0 < pages[-1] <= PAGE_BYTES
        assert sum(pages) == len(data)
        assert _raw_bytes(conn, raw_ids[uid]) == data
    loaded = processor_store.load_raws(conn, sorted(raw_ids.values()))
    assert {raw.id: raw.raw for raw in loaded} == {raw_ids[u]: m for u, m in mails.items()}


def test_an_empty_mail_reads_back_empty_not_missing(
    conn: psycopg.Connection, mailbox_id: int
) -> None:
    """Zero bytes from the server are one empty page: the processor then fails it as an
    empty mail, instead of taking it for a mail whose bytes are gone."""
    with conn.transaction():
        raw_ids = store.save_raw_batch(conn, mailbox_id, "INBOX", 1, {1: b""})
    assert _pages(conn, raw_ids[1]) == [0]
    assert _raw_bytes(conn, raw_ids[1]) == b""


def test_the_same_mail_stored_again_writes_no_second_copy(
    conn: psycopg.Connection, mailbox_id: int
) -> None:
    """A batch fetched again after a crash (same UIDs) and the same mails under a new
    UIDVALIDITY (Message-ID and hash) find the stored rows: no page is written twice."""
    mails = {1: invoice_mail(1, to=TO)[0], 2: invoice_mail(2, to=TO)[0]}
    with conn.transaction():
        first = store.save_raw_batch(conn, mailbox_id, "INBOX", 1, mails)
    count = "SELECT count(*) AS n FROM raw_message_chunks"
    pages = conn.execute(count).fetchone()
    with conn.transaction():
        again = store.save_raw_batch(conn, mailbox_id, "INBOX", 1, mails)
    with conn.transaction():
        renumbered = store.save_raw_batch(conn, mailbox_id, "INBOX", 2, {7: mails[1], 8: mails[2]})
    assert again == first
    assert sorted(renumbered.values()) == sorted(first.values())
    assert conn.execute(count).fetchone() == pages
    assert [_raw_bytes(conn, first[u]) for u in (1, 2)] == [mails[1], mails[2]]


def test_a_large_mail_streamed_in_chunks_is_stored_in_pages(
    conn: psycopg.Connection, mailbox_id: int
) -> None:
    """A mail fetched in chunks (no RFC822.SIZE, or over the chunk threshold) is paged
    chunk by chunk; its head, as the processor reads a mail it gave up on, is exactly its
    first HEAD_BYTES."""
    data = _mail_of(processor_store.HEAD_BYTES + 5 * PAGE_BYTES + 3, 9)
    step = 100_003  # not a multiple of the page size: each chunk ends in a short page
    chunks = iter(data[i : i + step] for i in range(0, len(data), step))
    with conn.transaction():
        raw_id, size = store.save_raw_chunked(conn, mailbox_id, "INBOX", 1, 1, chunks)
    assert size == len(data)
    assert max(_pages(conn, raw_id)) == PAGE_BYTES
    assert _raw_bytes(conn, raw_id) == data
    [head] = processor_store.load_raws(conn, [raw_id], head_only=True)
    assert head.raw == data[: processor_store.HEAD_BYTES]


def test_mails_stored_before_the_pages_still_read(
    conn: psycopg.Connection, mailbox_id: int
) -> None:
    """Rows from before migration 0015 keep their layout: bytes inline in ``raw``, or 1 MiB
    chunks (TOASTed, as the column's storage allowed then). Both read whole and as a head."""
    inline = _mail_of(70_000, 1)
    chunked = _mail_of(processor_store.HEAD_BYTES + 2_000_000, 2)
    conn.execute("ALTER TABLE raw_message_chunks ALTER COLUMN data SET STORAGE EXTENDED")
    ids = {}
    for uid, data, is_chunked in ((1, inline, False), (2, chunked, True)):
        row = conn.execute(
            "INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, sha256, size, raw,"
            " chunked) VALUES (%s, 'INBOX', 1, %s, 'x', %s, %s, %s) RETURNING id",
            (mailbox_id, uid, len(data), None if is_chunked else data, is_chunked),
        ).fetchone()
        assert row is not None
        ids[uid] = row["id"]
    mib = 1024 * 1024
    for seq, start in enumerate(range(0, len(chunked), mib)):
        conn.execute(
            "INSERT INTO raw_message_chunks (raw_id, seq, data) VALUES (%s, %s, %b)",
            (ids[2], seq, chunked[start : start + mib]),
        )
    conn.execute("ALTER TABLE raw_message_chunks ALTER COLUMN data SET STORAGE PLAIN")
    whole = processor_store.load_raws(conn, [ids[1], ids[2]])
    heads = processor_store.load_raws(conn, [ids[1], ids[2]], head_only=True)
    assert [raw.raw for raw in whole] == [inline, chunked]
    head = processor_store.HEAD_BYTES
    assert [raw.raw for raw in heads] == [inline[:head], chunked[:head]]


def test_a_page_larger_than_a_database_page_is_refused(
    conn: psycopg.Connection, mailbox_id: int
) -> None:
    """The pages' column is stored PLAIN: a row that does not fit one 8 KiB page is an
    error, never silently TOASTed (which would bring back the cost the pages remove)."""
    raw = conn.execute(
        "INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, sha256, size, chunked)"
        " VALUES (%s, 'INBOX', 1, 1, 'x', 9000, true) RETURNING id",
        (mailbox_id,),
    ).fetchone()
    assert raw is not None
    with pytest.raises(errors.ProgramLimitExceeded):
        conn.execute(
            "INSERT INTO raw_message_chunks (raw_id, seq, data) VALUES (%s, 0, %b)",
            (raw["id"], bytes(9000)),
        )
