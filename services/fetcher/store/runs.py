"""A fetch run's first and last statements: the mailbox lease and the tenant's connection
slot, taken together, renewed together and given back together, one round trip each.

A quiet poll is mostly this bookkeeping, and at 10,000 mailboxes a minute each round trip
counts (BENCHMARKS.md): the run starts with one statement that leases the mailbox, takes
a free slot unless the tenant is throttled, and reads the folder position and the access
token; a run that went well ends with one that frees both. Both run in autocommit
(``common.db.single_statements``): a statement is atomic by itself, and ``BEGIN`` and
``COMMIT`` would be two more round trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from psycopg import Connection

from services.fetcher.store.mailboxes import LEASE_TTL, LeasedMailbox
from services.fetcher.store.tenant_limits import SLOT_TTL
from services.fetcher.sync import FolderPosition


@dataclass(frozen=True)
class RunStartRow:
    """What the run's first statement took and read."""

    mailbox: LeasedMailbox
    tenant_wait: float  # > 0: seconds the tenant must still wait; no slot was taken
    slot: int | None  # None: throttled, or no slot row free (or none exists yet)
    position: FolderPosition | None
    token_row: dict[str, Any] | None = field(repr=False)  # encrypted; access_tokens reads it


# Data-modifying CTEs all see the snapshot from before the statement: the slot is found
# through the lease's RETURNING (no lease, no slot), and the reads see none of the
# statement's own changes, which touch no row they read.
_START = (
    "WITH leased AS (UPDATE mailboxes SET lease_until = now() + %(lease_ttl)s,"
    "   lease_owner = %(owner)s"
    "   WHERE id = %(id)s AND state = 'active' AND (lease_until IS NULL OR lease_until < now())"
    "   RETURNING id, address, tenant_id, folder, post_action, move_to_folder, error_count),"
    " throttle AS (SELECT coalesce(greatest(extract(epoch FROM t.imap_throttled_until - now()),"
    "   0), 0) AS tenant_wait FROM leased l LEFT JOIN tenants t ON t.tenant_id = l.tenant_id),"
    " slot AS (UPDATE imap_slots SET owner = %(slot_owner)s, lease_until = now() + %(slot_ttl)s"
    "   WHERE (tenant_id, slot) = (SELECT s.tenant_id, s.slot FROM imap_slots s"
    "     WHERE s.tenant_id = (SELECT tenant_id FROM leased) AND s.slot < %(cap)s"
    "       AND (s.lease_until IS NULL OR s.lease_until < now())"
    "       AND (SELECT tenant_wait FROM throttle) <= 0"
    "     ORDER BY s.slot LIMIT 1 FOR UPDATE SKIP LOCKED)"
    "   RETURNING slot)"
    " SELECT l.*, w.tenant_wait, (SELECT slot FROM slot) AS slot, f.uidvalidity, f.last_uid,"
    "   k.mailbox_id AS token_mailbox_id, k.access_token, k.access_issued_at,"
    "   k.access_expires_at"
    " FROM leased l CROSS JOIN throttle w"
    " LEFT JOIN folder_state f ON f.mailbox_id = l.id AND f.folder = l.folder"
    " LEFT JOIN mailbox_tokens k ON k.mailbox_id = l.id"
)
_TOKEN_COLUMNS = ("access_token", "access_issued_at", "access_expires_at")

_FINISH_OK = (
    "WITH freed AS (UPDATE imap_slots SET owner = NULL, lease_until = NULL"
    "   WHERE tenant_id = %(tenant)s AND slot = %(slot)s AND owner = %(slot_owner)s)"
    " UPDATE mailboxes SET lease_until = NULL, lease_owner = NULL, last_fetch_at = now(),"
    "   last_error = NULL, error_count = 0 WHERE id = %(id)s AND lease_owner = %(owner)s"
)


_RENEW = (
    "WITH slot AS (UPDATE imap_slots SET lease_until = now() + %(slot_ttl)s"
    "   WHERE tenant_id = %(tenant)s AND slot = %(slot)s AND owner = %(slot_owner)s"
    "   RETURNING slot)"
    " UPDATE mailboxes SET lease_until = now() + %(lease_ttl)s"
    " WHERE id = %(id)s AND lease_owner = %(owner)s AND state = 'active'"
    "   AND EXISTS (SELECT FROM slot) RETURNING id"
)


def slot_owner(owner: str, mailbox_id: int) -> str:
    """Who holds a tenant slot: the run, named by its process and its mailbox (a mailbox
    has one run at a time). The process alone would let two runs of one replica share a
    slot that lapsed and was taken again, and one's release free the other's. It starts
    with the process's name, so a restarted process's recovery still frees it."""
    return f"{owner}/{mailbox_id}"


def start_run(conn: Connection[Any], mailbox_id: int, owner: str, cap: int) -> RunStartRow | None:
    """Lease the mailbox, take one of its tenant's first ``cap`` slots unless the tenant
    is throttled, and read the folder position and the access token; None if the mailbox
    is not active or another worker has it."""
    row = conn.execute(
        _START,
        {
            "lease_ttl": LEASE_TTL,
            "slot_ttl": SLOT_TTL,
            "owner": owner,
            "slot_owner": slot_owner(owner, mailbox_id),
            "id": mailbox_id,
            "cap": cap,
        },
    ).fetchone()
    if row is None:
        return None
    mailbox = LeasedMailbox(**{f.name: row[f.name] for f in fields(LeasedMailbox)})
    position = (
        None if row["uidvalidity"] is None else FolderPosition(row["uidvalidity"], row["last_uid"])
    )
    tokens = None if row["token_mailbox_id"] is None else {c: row[c] for c in _TOKEN_COLUMNS}
    return RunStartRow(mailbox, float(row["tenant_wait"]), row["slot"], position, tokens)


def finish_ok(
    conn: Connection[Any], mailbox_id: int, owner: str, tenant_id: str, slot: int | None
) -> None:
    """Free the run's slot and its lease, and record the mailbox as fetched now."""
    # No slot (-1 matches no row): the mailbox alone.
    slot_number = -1 if slot is None else slot
    conn.execute(
        _FINISH_OK,
        {
            "tenant": tenant_id,
            "slot": slot_number,
            "owner": owner,
            "slot_owner": slot_owner(owner, mailbox_id),
            "id": mailbox_id,
        },
    )


def renew_run(
    conn: Connection[Any], mailbox_id: int, owner: str, tenant_id: str, slot: int
) -> bool:
    """Extend the run's mailbox lease and its tenant slot, both by their full time; False
    once either stopped being ours (the mailbox disconnected, paused or needing
    re-authorization mid-run, or the slot taken by another run after it expired):
    nothing more may be stored, and the run must let its connection go.

    Renewed together because a run that drains a backlog for longer than ``SLOT_TTL``
    would otherwise keep its connection after its slot had expired, and another run
    could take the slot: more connections than BANDEJA_IMAP_CONNECTIONS_PER_TENANT.
    """
    row = conn.execute(
        _RENEW,
        {
            "lease_ttl": LEASE_TTL,
            "slot_ttl": SLOT_TTL,
            "owner": owner,
            "slot_owner": slot_owner(owner, mailbox_id),
            "id": mailbox_id,
            "tenant": tenant_id,
            "slot": slot,
        },
    ).fetchone()
    return row is not None
