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
from services.processor import store
from services.processor.errors import SendInterrupted

log = structlog.get_logger(__name__)

BATCH = 20  # raw mails per processing message, as the fetcher sends them


def send_for_processing(raw_ids: Sequence[int]) -> int:
    """Enqueue the mails in batches; returns the messages sent (each broker-confirmed)."""
    batches = [list(raw_ids[i : i + BATCH]) for i in range(0, len(raw_ids), BATCH)]
    for sent, batch in enumerate(batches):
        try:
            broker.send(broker.PROCESS_QUEUE, broker.PROCESS_MESSAGES_ACTOR, batch)
        except dramatiq.errors.BrokerConnectionError as exc:
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
    failed_ids = store.failed_raw_ids(conn, mailbox) if failed else []
    stranded_ids = (
        store.stranded_raw_ids(conn, stranded_minutes, mailbox)
        if stranded_minutes is not None
        else []
    )
    summary = {"failed": len(failed_ids), "stranded": len(stranded_ids), "messages": 0}
    if dry_run:
        return summary
    summary["failed_documents_deleted"] = store.forget_failed_documents(conn, failed_ids)
    # Committed before the mails are sent (the selects above opened a transaction, in which
    # `conn.transaction()` would only be a savepoint): a processor that still saw the failed
    # documents would take the mails for done and drop the messages.
    conn.commit()
    summary["messages"] = send_for_processing(sorted(set(failed_ids) | set(stranded_ids)))
    log.info("reprocess_sent", mailbox=mailbox, **summary)
    return summary
