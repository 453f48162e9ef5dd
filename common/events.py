"""CloudEvents 1.0 envelopes (structured JSON) and the transactional outbox.

An event is written to ``outbox`` in the same transaction as the change it announces;
the relay publishes it later. Ids are derived from what the event is about, so writing
the same event twice (a retried transaction, a re-processed mail) yields one row and the
ERP can de-duplicate on ``(source, id)``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from common.db import OUTBOX_CHANNEL
from common.tracing import current_traceparent

EXCHANGE = "bandeja.events"
UNROUTED_EXCHANGE = "bandeja.events.unrouted"
UNROUTED_QUEUE = "bandeja.events.unrouted"

MAILBOX_CONNECTED = "bandeja.mailbox.connected"
MAILBOX_REAUTH_NEEDED = "bandeja.mailbox.reauth_needed"
MAILBOX_DISCONNECTED = "bandeja.mailbox.disconnected"
MAILBOX_ERROR = "bandeja.mailbox.error"
MAILBOX_PURGED = "bandeja.mailbox.purged"
DOCUMENT_PROCESSED = "bandeja.document.processed"
DOCUMENT_FAILED = "bandeja.document.failed"

EVENT_TYPES = (
    MAILBOX_CONNECTED,
    MAILBOX_REAUTH_NEEDED,
    MAILBOX_DISCONNECTED,
    MAILBOX_ERROR,
    MAILBOX_PURGED,
    DOCUMENT_PROCESSED,
    DOCUMENT_FAILED,
)

_NAMESPACE = uuid.UUID("5b0c3f0e-8a7d-4a52-9a43-2f4f7f0d2b11")


def stable_id(*parts: object) -> uuid.UUID:
    """A UUID that is the same every time for the same parts."""
    return uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts))


def cloud_event(
    event_type: str,
    *,
    event_id: uuid.UUID,
    source: str,
    subject: str,
    data: dict[str, Any],
    time: datetime | None = None,
) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": (time or datetime.now(UTC)).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    # The distributed-tracing extension: the trace of the work that raised the event
    # (a document's: its mail's fetch run; common/tracing.py).
    traceparent = current_traceparent()
    if traceparent is not None:
        event["traceparent"] = traceparent
    return event


_INSERT_OUTBOX = (
    "INSERT INTO outbox (id, event_type, event) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING"
)


def add_to_outbox(conn: Connection[Any], event: dict[str, Any]) -> bool:
    """Queue ``event`` for publication in the caller's transaction; False if already queued."""
    row = conn.execute(
        _INSERT_OUTBOX + " RETURNING id", (event["id"], event["type"], Jsonb(event))
    ).fetchone()
    # NOTIFY is delivered at commit, only a wake-up hint: the relay also polls.
    conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
    return row is not None


def add_all_to_outbox(conn: Connection[Any], batch: list[dict[str, Any]]) -> None:
    """Queue several events in the caller's transaction, pipelined: one round trip in all."""
    if not batch:
        return
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT_OUTBOX, [(e["id"], e["type"], Jsonb(e)) for e in batch])
    conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
