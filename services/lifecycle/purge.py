"""Erasing everything Bandeja holds for one mailbox: ``bandeja purge`` and the admin API.

Erased: the raw mail (and its chunks), the documents with their files (processed and
failed alike), the mailbox's mail rules and skipped-mail records (they cascade with the
raw mail and the mailbox row), the tokens, the folder positions and leases, the OAuth
flows started for the address, the events about the mailbox still in the outbox
(published or not: they carry the address and subjects), and the mailbox row itself,
with whatever its foreign keys cascade to. Then one ``bandeja.mailbox.purged`` event,
written in the last transaction, tells the ERP to erase its own copies; it carries ids
only, never the address, so nothing of the mailbox is left readable once it is
published (docs/architecture.md#lifecycle).

The mailbox is first disconnected (tokens deleted, state ``disconnected``) and committed,
so the fetcher and the refresher leave it alone; the bulk goes in short batches; the last
transaction locks the mailbox row, deletes what is left and the row. A run cut short
leaves a disconnected mailbox with less data: run it again. A fetch that stores a mail
meanwhile holds a key-share lock on the mailbox row, so the last transaction either sees
its mail or makes its insert fail on the foreign key: no raw mail outlives the row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from psycopg import Connection

from common import events

log = structlog.get_logger(__name__)

EVENT_SOURCE = "urn:bandeja:lifecycle"
BATCH = 200


@dataclass(frozen=True)
class Purged:
    mailbox_id: int | None
    raw_mails: int
    documents: int
    events: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Target:
    id: int
    address: str
    tenant_id: str
    created_at: datetime


def purge_mailbox(
    conn: Connection[Any],
    *,
    mailbox_id: int | None = None,
    address: str | None = None,
    batch: int = BATCH,
) -> Purged | None:
    """Erase one mailbox, named by id or by address; None when Bandeja holds nothing for it.

    ``conn`` must not be inside a transaction: each step commits on its own.
    """
    target = _disconnect(conn, mailbox_id, address)
    if target is None:
        # No mailbox row (an earlier purge finished, or was never connected): by address,
        # erase documents and events left behind, e.g. by a processor mid-write then.
        return _erase_leftovers(conn, address) if address else None
    raw_mails = _in_batches(
        conn,
        "DELETE FROM raw_messages WHERE id IN (SELECT id FROM raw_messages"
        " WHERE mailbox_id = %s LIMIT %s FOR UPDATE SKIP LOCKED)",
        target.id,
        batch,
    )
    documents = _in_batches(
        conn,
        "DELETE FROM documents WHERE id IN (SELECT id FROM documents"
        " WHERE mailbox_id = %s LIMIT %s FOR UPDATE SKIP LOCKED)",
        target.id,
        batch,
    )
    with conn.transaction():
        locked = conn.execute(
            "SELECT id FROM mailboxes WHERE id = %s FOR UPDATE", (target.id,)
        ).fetchone()
        if locked is None:  # a concurrent purge finished first
            return Purged(target.id, raw_mails, documents, 0)
        raw_mails += conn.execute(
            "DELETE FROM raw_messages WHERE mailbox_id = %s", (target.id,)
        ).rowcount
        documents += conn.execute(
            "DELETE FROM documents WHERE mailbox_id = %s", (target.id,)
        ).rowcount
        erased_events = conn.execute(
            "DELETE FROM outbox WHERE event->'data'->>'mailbox_id' = %s"
            " OR event->'data'->>'mailbox' = %s",
            (str(target.id), target.address),
        ).rowcount
        conn.execute("DELETE FROM oauth_flows WHERE login_hint = %s", (target.address,))
        conn.execute(
            "DELETE FROM connect_tickets WHERE mailbox_id = %s OR address = %s",
            (target.id, target.address),
        )
        conn.execute("DELETE FROM mailboxes WHERE id = %s", (target.id,))
        purged = Purged(target.id, raw_mails, documents, erased_events)
        events.add_to_outbox(conn, _purged_event(target, purged))
    log.info("mailbox_purged", **purged.as_json())
    return purged


def _disconnect(
    conn: Connection[Any], mailbox_id: int | None, address: str | None
) -> _Target | None:
    with conn.transaction():
        row = conn.execute(
            "UPDATE mailboxes SET state = 'disconnected', updated_at = now()"
            " WHERE id = %s OR address = %s RETURNING id, address, tenant_id, created_at",
            (mailbox_id, address),
        ).fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM mailbox_tokens WHERE mailbox_id = %s", (row["id"],))
    return _Target(**row)


def _in_batches(conn: Connection[Any], statement: str, mailbox_id: int, batch: int) -> int:
    """Run a batched DELETE in short transactions until it finds nothing it can lock;
    rows another transaction holds are left to the last, waiting transaction."""
    total = 0
    while True:
        with conn.transaction():
            deleted = conn.execute(statement, (mailbox_id, batch)).rowcount
        total += deleted
        if deleted < batch:
            return total


def _erase_leftovers(conn: Connection[Any], address: str) -> Purged | None:
    with conn.transaction():
        documents = conn.execute("DELETE FROM documents WHERE mailbox = %s", (address,)).rowcount
        erased_events = conn.execute(
            "DELETE FROM outbox WHERE event->'data'->>'mailbox' = %s", (address,)
        ).rowcount
        flows = conn.execute("DELETE FROM oauth_flows WHERE login_hint = %s", (address,)).rowcount
        tickets = conn.execute(
            "DELETE FROM connect_tickets WHERE address = %s", (address,)
        ).rowcount
    if not (documents or erased_events or flows or tickets):
        return None
    return Purged(None, 0, documents, erased_events)


def _purged_event(target: _Target, purged: Purged) -> dict[str, Any]:
    now = datetime.now(UTC)
    return events.cloud_event(
        events.MAILBOX_PURGED,
        # One purge event per mailbox: a retried last transaction writes the same row
        # once. The creation time keeps ids apart should a restored database hand out a
        # mailbox id again (the address would, but it must not be derivable from the id).
        event_id=events.stable_id(events.MAILBOX_PURGED, target.id, target.created_at.isoformat()),
        source=EVENT_SOURCE,
        subject=f"mailbox/{target.id}",
        time=now,
        data={
            "mailbox_id": target.id,
            "tenant_id": target.tenant_id,
            "purged_at": now.isoformat(),
            "erased": {
                "raw_mails": purged.raw_mails,
                "documents": purged.documents,
                "events": purged.events,
            },
        },
    )
