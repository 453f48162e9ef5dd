"""``bandeja reprocess``: send stored mails through the processor again once a cause is fixed.

Two kinds of mail qualify. ``--failed``: mails whose document is ``failed`` (a parser bug
fixed since, a CRM constraint relaxed, mail settled after its retries ran out). Their
failed document and its files are deleted, and the processor writes a new one under the
same document id, announced as ``bandeja.document.processed`` (a mail that fails again
keeps its earlier ``bandeja.document.failed`` event, which is not sent twice).
``--stranded-minutes N``: mails stored over N minutes ago that have no document at all,
such as those of a dead letter that was purged, or of a reprocess whose send failed.

Deleting comes first and sending second, so an interrupted run leaves stranded mails,
never lost ones: run it again with ``--stranded-minutes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dramatiq
import structlog
from psycopg import Connection

from common import broker

log = structlog.get_logger(__name__)

BATCH = 20  # raw mails per processing message, as the fetcher sends them
PROCESS_ACTOR = "process_messages"


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
    their processor-death counts again (crashes.py)."""
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


class SendInterrupted(Exception):
    """The broker failed part way: ``sent`` of ``total`` messages were confirmed."""

    def __init__(self, sent: int, total: int) -> None:
        super().__init__(f"{sent} of {total} processing messages sent")
        self.sent = sent
        self.total = total


def send_for_processing(raw_ids: Sequence[int]) -> int:
    """Enqueue the mails in batches; returns the messages sent (each broker-confirmed)."""
    batches = [list(raw_ids[i : i + BATCH]) for i in range(0, len(raw_ids), BATCH)]
    for sent, batch in enumerate(batches):
        try:
            broker.send(broker.PROCESS_QUEUE, PROCESS_ACTOR, batch)
        except dramatiq.errors.ConnectionError as exc:
            raise SendInterrupted(sent, len(batches)) from exc
    return len(batches)


def reprocess(
    conn: Connection[Any],
    *,
    failed: bool,
    stranded_minutes: float | None,
    mailbox: str | None,
    dry_run: bool,
) -> dict[str, int]:
    failed_ids = failed_raw_ids(conn, mailbox) if failed else []
    stranded_ids = (
        stranded_raw_ids(conn, stranded_minutes, mailbox) if stranded_minutes is not None else []
    )
    summary = {"failed": len(failed_ids), "stranded": len(stranded_ids), "messages": 0}
    if dry_run:
        return summary
    summary["failed_documents_deleted"] = forget_failed_documents(conn, failed_ids)
    # Committed before the mails are sent (the selects above opened a transaction, in which
    # `conn.transaction()` would only be a savepoint): a processor that still saw the failed
    # documents would take the mails for done and drop the messages.
    conn.commit()
    summary["messages"] = send_for_processing(sorted(set(failed_ids) | set(stranded_ids)))
    log.info("reprocess_sent", mailbox=mailbox, **summary)
    return summary
