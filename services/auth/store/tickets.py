"""Connect links' tickets (only their SHA-256 is stored)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection


def save_ticket(
    conn: Connection[Any], ticket_hash: bytes, address: str, reference: str, ttl: float
) -> datetime:
    row = conn.execute(
        "INSERT INTO connect_tickets (ticket_hash, address, erp_reference, expires_at)"
        " VALUES (%s, %s, %s, now() + %s) RETURNING expires_at",
        (ticket_hash, address, reference, timedelta(seconds=ttl)),
    ).fetchone()
    assert row is not None
    expires_at: datetime = row["expires_at"]
    return expires_at


def find_ticket(conn: Connection[Any], ticket_hash: bytes) -> dict[str, Any] | None:
    """An unused, unexpired ticket: its address, reference and when it was minted."""
    row: dict[str, Any] | None = conn.execute(
        "SELECT address, erp_reference AS reference, created_at FROM connect_tickets"
        " WHERE ticket_hash = %s AND used_at IS NULL AND expires_at > now()",
        (ticket_hash,),
    ).fetchone()
    return row


def use_ticket(conn: Connection[Any], ticket_hash: bytes) -> dict[str, Any] | None:
    """Consume a ticket once (in the transaction that connects its mailbox)."""
    row: dict[str, Any] | None = conn.execute(
        "UPDATE connect_tickets SET used_at = now()"
        " WHERE ticket_hash = %s AND used_at IS NULL AND expires_at > now()"
        " RETURNING address, erp_reference AS reference, created_at",
        (ticket_hash,),
    ).fetchone()
    return row


def ticket_used_for(conn: Connection[Any], ticket_hash: bytes, mailbox_id: int) -> None:
    conn.execute(
        "UPDATE connect_tickets SET mailbox_id = %s WHERE ticket_hash = %s",
        (mailbox_id, ticket_hash),
    )
