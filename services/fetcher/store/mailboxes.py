"""The mailbox row as the fetcher sees it: the fetch-run lease, the folder position, the
post-action, the error state, and making a mailbox due now."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import Connection

from common import events
from common.db import MAILBOX_CHANNEL
from services.fetcher.sync import FolderPosition

LEASE_TTL = timedelta(seconds=90)


@dataclass(frozen=True)
class LeasedMailbox:
    id: int
    address: str
    tenant_id: str
    folder: str
    post_action: str
    move_to_folder: str | None
    error_count: int


def recover_leases_of_previous_life(conn: Connection[Any], host: str, owner: str) -> int:
    """Release the leases a previous process on this host held when it died.

    A container restarted in the same pod keeps its host name, so whatever
    ``host-<old pid>`` leased is free now instead of after the lease expires.
    """
    pattern = f"{host}-%"
    released = 0
    for table, column, extra in (
        ("mailboxes", "lease_owner", ", lease_until = NULL"),
        ("mailboxes", "idle_owner", ", idle_lease_until = NULL"),
        ("imap_slots", "owner", ", lease_until = NULL"),
    ):
        cursor = conn.execute(
            f"UPDATE {table} SET {column} = NULL{extra} WHERE {column} LIKE %s AND {column} <> %s",
            (pattern, owner),
        )
        released += cursor.rowcount
    return released


def release_failed(
    conn: Connection[Any], mailbox_id: int, owner: str, error: str, retry_in: float
) -> None:
    conn.execute(
        "UPDATE mailboxes SET lease_until = NULL, lease_owner = NULL, last_error = %s,"
        " error_count = error_count + 1,"
        " next_fetch_at = LEAST(next_fetch_at, now() + %s)"
        " WHERE id = %s AND lease_owner = %s",
        (error[:1000], timedelta(seconds=retry_in), mailbox_id, owner),
    )


def save_position(conn: Connection[Any], mailbox_id: int, folder: str, pos: FolderPosition) -> None:
    conn.execute(
        "INSERT INTO folder_state (mailbox_id, folder, uidvalidity, last_uid)"
        " VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (mailbox_id, folder) DO UPDATE SET uidvalidity = EXCLUDED.uidvalidity,"
        " last_uid = GREATEST(CASE WHEN folder_state.uidvalidity = EXCLUDED.uidvalidity"
        "   THEN folder_state.last_uid ELSE 0 END, EXCLUDED.last_uid), updated_at = now()",
        (mailbox_id, folder, pos.uidvalidity, pos.last_uid),
    )


def move_to_error(conn: Connection[Any], mailbox_id: int, error: str) -> bool:
    """A mailbox that is gone or denies access stops being retried; one event says why."""
    row = conn.execute(
        "UPDATE mailboxes SET state = 'error', last_error = %s, updated_at = now()"
        " WHERE id = %s AND state = 'active' RETURNING id, address, tenant_id, erp_reference",
        (error[:1000], mailbox_id),
    ).fetchone()
    if row is None:
        return False
    event = events.cloud_event(
        events.MAILBOX_ERROR,
        event_id=uuid.uuid4(),  # once per transition, inside it
        source="urn:bandeja:fetcher",
        subject=f"mailbox/{row['id']}",
        data={
            "mailbox_id": row["id"],
            "mailbox": row["address"],
            "tenant_id": row["tenant_id"],
            "reference": row["erp_reference"],
            "error": error[:1000],
        },
    )
    events.add_to_outbox(conn, event)
    return True


def post_action(conn: Connection[Any], mailbox_id: int) -> tuple[str, str | None]:
    row = conn.execute(
        "SELECT post_action, move_to_folder FROM mailboxes WHERE id = %s", (mailbox_id,)
    ).fetchone()
    return (row["post_action"], row["move_to_folder"]) if row else ("mark_read", None)


def wake_mailbox(conn: Connection[Any], mailbox_id: int) -> None:
    """Make the mailbox due now and wake the scheduler (its LISTEN)."""
    conn.execute("UPDATE mailboxes SET next_fetch_at = now() WHERE id = %s", (mailbox_id,))
    conn.execute(f"NOTIFY {MAILBOX_CHANNEL}")
