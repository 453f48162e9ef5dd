"""Tenant-wide IMAP limits shared by every fetcher replica, kept in PostgreSQL.

Exchange Online throttles per tenant and limits connections (docs/architecture.md#exo-limits): a
slot lease caps concurrent fetch connections per tenant, and a throttled reply makes the whole
tenant wait the suggested time, not only the mailbox that saw it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from psycopg import Connection

SLOT_TTL = timedelta(seconds=90)


def throttled_for(conn: Connection[Any], tenant_id: str) -> float:
    """Seconds this tenant must still wait after a throttled reply (0 if none)."""
    row = conn.execute(
        "SELECT greatest(extract(epoch FROM imap_throttled_until - now()), 0) AS wait"
        " FROM tenants WHERE tenant_id = %s",
        (tenant_id,),
    ).fetchone()
    return float(row["wait"]) if row and row["wait"] is not None else 0.0


def throttle_tenant(conn: Connection[Any], tenant_id: str, seconds: float) -> None:
    conn.execute(
        "UPDATE tenants SET imap_throttled_until = greatest("
        " coalesce(imap_throttled_until, now()), now() + %s) WHERE tenant_id = %s",
        (timedelta(seconds=seconds), tenant_id),
    )


def acquire_slot(conn: Connection[Any], tenant_id: str, owner: str, cap: int) -> int | None:
    """Take one of the tenant's ``cap`` connection slots; None when all are in use."""
    slot = _take_free_slot(conn, tenant_id, owner, cap)
    if slot is None and _add_missing_slots(conn, tenant_id, cap):
        slot = _take_free_slot(conn, tenant_id, owner, cap)
    return slot


def _take_free_slot(conn: Connection[Any], tenant_id: str, owner: str, cap: int) -> int | None:
    row = conn.execute(
        "UPDATE imap_slots SET owner = %s, lease_until = now() + %s"
        " WHERE (tenant_id, slot) = (SELECT tenant_id, slot FROM imap_slots"
        "   WHERE tenant_id = %s AND slot < %s"
        "     AND (lease_until IS NULL OR lease_until < now())"
        "   ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING slot",
        (owner, SLOT_TTL, tenant_id, cap),
    ).fetchone()
    return int(row["slot"]) if row else None


def _add_missing_slots(conn: Connection[Any], tenant_id: str, cap: int) -> bool:
    """Create the tenant's slot rows up to ``cap`` (a new tenant, a raised cap); True if
    any was added. Only when no slot was free: inserting all of them on every claim was
    ``cap`` conflicting inserts per fetch run."""
    cursor = conn.execute(
        "INSERT INTO imap_slots (tenant_id, slot) SELECT %s, g FROM generate_series(0, %s - 1) g"
        " ON CONFLICT DO NOTHING",
        (tenant_id, cap),
    )
    return cursor.rowcount > 0


def release_slot(conn: Connection[Any], tenant_id: str, slot: int, owner: str) -> None:
    conn.execute(
        "UPDATE imap_slots SET owner = NULL, lease_until = NULL"
        " WHERE tenant_id = %s AND slot = %s AND owner = %s",
        (tenant_id, slot, owner),
    )
