"""Which fetcher process watches which mailbox with IMAP IDLE: a renewable lease on the
mailbox row (``idle_owner``, ``idle_lease_until``), so each mailbox has one watcher across
replicas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import Connection

IDLE_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class WatchedMailbox:
    id: int
    address: str
    folder: str
    tenant_id: str


def claim(conn: Connection[Any], owner: str, room: int) -> list[WatchedMailbox]:
    """Take (or keep) up to ``room`` active IDLE mailboxes no other process watches."""
    rows = conn.execute(
        "UPDATE mailboxes SET idle_owner = %s, idle_lease_until = now() + %s"
        " WHERE id IN (SELECT id FROM mailboxes WHERE state = 'active' AND use_idle"
        "   AND (idle_lease_until IS NULL OR idle_lease_until < now()"
        "        OR idle_owner = %s)"
        "   ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING id, address, folder, tenant_id",
        (owner, IDLE_LEASE, owner, room),
    ).fetchall()
    return [WatchedMailbox(**row) for row in rows]


def renew(conn: Connection[Any], owner: str, mailbox_ids: list[int]) -> set[int]:
    """Renew our leases; return the mailboxes still wanted (active, IDLE on, ours)."""
    rows = conn.execute(
        "UPDATE mailboxes SET idle_lease_until = now() + %s"
        " WHERE idle_owner = %s AND state = 'active' AND use_idle AND id = ANY(%s)"
        " RETURNING id",
        (IDLE_LEASE, owner, mailbox_ids),
    ).fetchall()
    return {r["id"] for r in rows}


def still_wanted(conn: Connection[Any], owner: str, mailbox_id: int) -> bool:
    """False once the mailbox is disconnected, paused, needs re-consent, has IDLE turned
    off, or is watched by another process."""
    row = conn.execute(
        "SELECT 1 FROM mailboxes WHERE id = %s AND state = 'active' AND use_idle"
        " AND idle_owner = %s",
        (mailbox_id, owner),
    ).fetchone()
    return row is not None


def release_all(conn: Connection[Any], owner: str) -> None:
    """Give up every IDLE lease of this process (at shutdown)."""
    conn.execute(
        "UPDATE mailboxes SET idle_owner = NULL, idle_lease_until = NULL WHERE idle_owner = %s",
        (owner,),
    )
