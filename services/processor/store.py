"""All of the processor's SQL: marking mails in process (crashes.py), loading them, the CRM
write (one document, its files and its event, in one transaction), and finding mails for
``bandeja reprocess``.

Document ids derive from the raw mail's id and event ids from the document's, so
processing the same stored mail twice changes nothing and re-publishes nothing new.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from common import events
from common.rules import DEFAULT_RULE
from services.processor.parsing import Attachment, ParsedMail

EVENT_SOURCE = "urn:bandeja:processor"


@dataclass(frozen=True)
class RawMail:
    id: int
    mailbox_id: int
    mailbox: str
    tenant_id: str
    raw: bytes | None
    headers: bytes | None
    too_large: bool
    size: int
    sha256: str
    fetched_at: datetime
    # A document was written for it, or a rule skipped it after parsing.
    has_document: bool
    # The rule its headers matched at fetch time (event data); pending: only the parsed
    # mail can decide (services/processor/attachment_rules.py).
    rule: dict[str, Any] | None = None
    rule_pending: bool = False


@dataclass(frozen=True)
class Started:
    """A stored mail about to be processed: the processor deaths it has caused so far and
    the bytes that will be parsed (only its headers when it is over the size cap)."""

    raw_id: int
    crashes: int
    nbytes: int


def start_processing(conn: Connection[Any], raw_ids: Sequence[int]) -> list[Started]:
    """Mark the mails that have no document as being processed now (crashes.py), in the
    caller's transaction; every stored mail among ``raw_ids`` is returned, in id order."""
    rows = conn.execute(
        "WITH marked AS (UPDATE raw_messages r SET processing_since = now()"
        "  WHERE r.id = ANY(%(ids)s)"
        "  AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.raw_message_id = r.id)"
        "  RETURNING r.id)"
        " SELECT r.id AS raw_id, r.processing_crashes AS crashes,"
        " CASE WHEN r.too_large THEN coalesce(length(r.headers), 0) ELSE r.size END AS nbytes"
        " FROM raw_messages r WHERE r.id = ANY(%(ids)s) ORDER BY r.id",
        {"ids": list(raw_ids)},
    ).fetchall()
    return [Started(**row) for row in rows]


def stop_processing(conn: Connection[Any], raw_ids: Sequence[int]) -> None:
    """Clear the marks of an attempt that ended in Python, whatever its outcome."""
    conn.execute(
        "UPDATE raw_messages SET processing_since = NULL"
        " WHERE id = ANY(%s) AND processing_since IS NOT NULL",
        (list(raw_ids),),
    )


def count_crashes(conn: Connection[Any], raw_ids: Sequence[int]) -> dict[int, int]:
    """One more crash for each of these mails that a dead process left marked and without
    a document; their marks are cleared. Returns them with their crash counts."""
    rows = conn.execute(
        "UPDATE raw_messages r SET processing_crashes = r.processing_crashes + 1,"
        " processing_since = NULL"
        " WHERE r.id = ANY(%s) AND r.processing_since IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.raw_message_id = r.id)"
        " RETURNING r.id, r.processing_crashes",
        (list(raw_ids),),
    ).fetchall()
    return {row["id"]: row["processing_crashes"] for row in rows}


# What ``bandeja reprocess`` sends again (reprocess.py).


def failed_raw_ids(conn: Connection[Any], mailbox: str | None) -> list[int]:
    rows = conn.execute(
        "SELECT raw_message_id FROM documents WHERE state = 'failed'"
        " AND (%(mailbox)s::text IS NULL OR mailbox = %(mailbox)s) ORDER BY raw_message_id",
        {"mailbox": mailbox},
    ).fetchall()
    return [row["raw_message_id"] for row in rows]


def stranded_raw_ids(conn: Connection[Any], minutes: float, mailbox: str | None) -> list[int]:
    rows = conn.execute(
        "SELECT r.id FROM raw_messages r JOIN mailboxes m ON m.id = r.mailbox_id"
        " WHERE r.fetched_at < now() - make_interval(secs => %(seconds)s)"
        " AND (%(mailbox)s::text IS NULL OR m.address = %(mailbox)s)"
        " AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.raw_message_id = r.id)"
        # A tombstone's failed document went with its bytes (services/lifecycle/retention.py).
        " AND r.raw_deleted_at IS NULL"
        " ORDER BY r.id",
        {"seconds": minutes * 60, "mailbox": mailbox},
    ).fetchall()
    return [row["id"] for row in rows]


def forget_failed_documents(conn: Connection[Any], raw_ids: Sequence[int]) -> int:
    """Delete the failed documents of these mails (their files go with them), and start
    their processor-death counts again (crashes.py), for ``bandeja reprocess --failed``."""
    cursor = conn.execute(
        "DELETE FROM documents WHERE state = 'failed' AND raw_message_id = ANY(%s)",
        (list(raw_ids),),
    )
    conn.execute(
        "UPDATE raw_messages SET processing_crashes = 0"
        " WHERE id = ANY(%s) AND processing_crashes > 0",
        (list(raw_ids),),
    )
    return cursor.rowcount


# Enough of a mail to read its headers from (process.envelope).
HEAD_BYTES = 256 * 1024
_WHOLE_RAW = (
    "CASE WHEN r.chunked THEN (SELECT string_agg(c.data, ''::bytea ORDER BY c.seq)"
    " FROM raw_message_chunks c WHERE c.raw_id = r.id) ELSE r.raw END"
)
_RAW_HEAD = (
    "substring(CASE WHEN r.chunked THEN (SELECT c.data FROM raw_message_chunks c"
    f" WHERE c.raw_id = r.id ORDER BY c.seq LIMIT 1) ELSE r.raw END from 1 for {HEAD_BYTES})"
)


def load_raws(
    conn: Connection[Any], raw_ids: Sequence[int], *, head_only: bool = False
) -> list[RawMail]:
    """The stored mails among ``raw_ids`` (missing ids are simply absent), in id order;
    with ``head_only``, ``raw`` holds only a mail's first ``HEAD_BYTES``, for a mail whose
    headers are all that will be read."""
    rows = conn.execute(
        "SELECT r.id, r.mailbox_id, m.address AS mailbox, m.tenant_id,"
        f" {_RAW_HEAD if head_only else _WHOLE_RAW} AS raw,"
        " r.headers, r.too_large, r.size, r.sha256, r.fetched_at,"
        " (EXISTS (SELECT 1 FROM documents d WHERE d.raw_message_id = r.id)"
        "  OR EXISTS (SELECT 1 FROM skipped_mails s WHERE s.raw_message_id = r.id))"
        " AS has_document, rr.rule, (rr.raw_message_id IS NOT NULL AND rr.rule IS NULL)"
        " AS rule_pending"
        " FROM raw_messages r JOIN mailboxes m ON m.id = r.mailbox_id"
        " LEFT JOIN raw_message_rules rr ON rr.raw_message_id = r.id"
        " WHERE r.id = ANY(%s) ORDER BY r.id",
        (list(raw_ids),),
        binary=True,  # bytea as is, not hex-encoded to twice its size and decoded here
    ).fetchall()
    return [
        RawMail(**{**row, "raw": _bytes(row["raw"]), "headers": _bytes(row["headers"])})
        for row in rows
    ]


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def document_id_for(raw: RawMail) -> uuid.UUID:
    """Stable for one stored mail, and distinct across installations and database
    restores: the mailbox and the content hash go into it, not only the row id."""
    return events.stable_id("document", raw.mailbox, raw.sha256, raw.id)


@dataclass
class Draft:
    """A parsed mail about to become a document."""

    raw: RawMail
    mail: ParsedMail
    state: str
    reason: str | None
    # The rule decided after parsing, when the headers could not decide (event data).
    rule: dict[str, Any] | None = None


_INSERT_DOCUMENT = (
    "INSERT INTO documents (id, raw_message_id, mailbox_id, mailbox, tenant_id, state,"
    " reason, message_id, subject, from_header, from_address, received_at, body_text,"
    " body_html, invoices, defects)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (raw_message_id) DO NOTHING RETURNING id"
)


def write_documents(conn: Connection[Any], drafts: list[Draft]) -> dict[int, uuid.UUID | None]:
    """Insert the documents, their files and their events; for each raw id, the document
    id, or None where a document already existed (nothing else is written for it).

    Statements are pipelined (executemany, one COPY for every file), so a batch costs a
    handful of round trips to PostgreSQL however many mails it holds.
    """
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT_DOCUMENT, [_document_row(d) for d in drafts], returning=True)
        inserted: dict[int, uuid.UUID | None] = {}
        for draft in drafts:
            row = cursor.fetchone()
            inserted[draft.raw.id] = row["id"] if row else None
            cursor.nextset()
    written = [(document_id, d) for d in drafts if (document_id := inserted[d.raw.id]) is not None]
    _write_files(conn, [(document_id, d.mail.attachments) for document_id, d in written])
    events.add_all_to_outbox(conn, [_document_event(document_id, d) for document_id, d in written])
    return inserted


def _document_row(draft: Draft) -> tuple[Any, ...]:
    raw, mail = draft.raw, draft.mail
    return (
        document_id_for(raw),
        raw.id,
        raw.mailbox_id,
        raw.mailbox,
        raw.tenant_id,
        draft.state,
        draft.reason,
        _clean_text(mail.message_id),
        _clean_text(mail.subject),
        _clean_text(mail.from_),
        _clean_text(mail.from_address),
        mail.date or raw.fetched_at,
        _clean_text(mail.text_body),
        _clean_text(mail.html_body),
        Jsonb([_invoice_json(i) for i in mail.invoices]),
        Jsonb(list(mail.defects)[:100]),
    )


_FILE_COLUMN_TYPES = [
    "uuid",
    "int4",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int8",
    "text",
    "bytea",
]


def _write_files(
    conn: Connection[Any], documents: list[tuple[uuid.UUID, list[Attachment]]]
) -> None:
    if not any(files for _, files in documents):
        return
    # Binary COPY: the files' bytes travel as they are, not escaped as text.
    with conn.cursor().copy(
        "COPY document_files (document_id, position, filename, original_filename, content_type,"
        " disposition, source, size, sha256, content) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_FILE_COLUMN_TYPES)
        for document_id, files in documents:
            for position, f in enumerate(files):
                copy.write_row(
                    (
                        document_id,
                        position,
                        _clean_text(f.filename),
                        _clean_text(f.original_filename),
                        f.content_type,
                        f.disposition,
                        f.source,
                        f.size,
                        f.sha256,
                        f.content,
                    )
                )


def _clean_text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; hostile mail does.
    return value.replace("\x00", "\ufffd") if value is not None else None


def _invoice_json(invoice: Any) -> dict[str, Any]:
    return {"format": invoice.format, "filename": invoice.filename, "fields": dict(invoice.fields)}


def _document_event(document_id: uuid.UUID, draft: Draft) -> dict[str, Any]:
    raw, mail, state, reason = draft.raw, draft.mail, draft.state, draft.reason
    processed = state == "processed"
    event_type = events.DOCUMENT_PROCESSED if processed else events.DOCUMENT_FAILED
    received = mail.date or raw.fetched_at
    data: dict[str, Any] = {
        "document_id": str(document_id),
        "mailbox_id": raw.mailbox_id,
        "mailbox": raw.mailbox,
        "tenant_id": raw.tenant_id,
        "message_id": mail.message_id,
        "subject": _clean_text(mail.subject) or "",
        "from": _clean_text(mail.from_),
        "received_at": received.isoformat(),
        "attachments": [
            {
                "filename": _clean_text(a.filename),
                "original_filename": _clean_text(a.original_filename),
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in mail.attachments
        ],
    }
    data["rule"] = draft.rule or raw.rule or DEFAULT_RULE.as_event_data()
    if processed:
        data["invoices"] = [_invoice_json(i) for i in mail.invoices]
    else:
        data["reason"] = reason or "unknown"
        data["state"] = state
    return events.cloud_event(
        event_type,
        event_id=events.stable_id(event_type, document_id),
        source=EVENT_SOURCE,
        subject=f"document/{document_id}",
        data=data,
    )
