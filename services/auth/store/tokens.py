"""Encrypted tokens (``mailbox_tokens``): saving a grant, claiming due refreshes under a
lease, recording their outcome.

Replicas claim due tokens with ``FOR UPDATE SKIP LOCKED`` and a lease, so each token is
refreshed by exactly one of them at a time; ``generation`` (bumped by every new grant)
keeps a refresh that raced a reconnect from overwriting the newer tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection


@dataclass(frozen=True)
class Grant:
    """A newly granted token set, already sealed, and when to refresh it."""

    access_token: bytes
    access_expires_at: datetime
    refresh_due_at: datetime
    token_cache: bytes | None = None  # delegated only: app-only caches live per tenant
    home_account_id: str | None = None


@dataclass(frozen=True)
class Claim:
    mailbox_id: int
    address: str
    tenant_id: str
    auth_kind: str
    token_cache: bytes | None
    home_account_id: str | None
    generation: int
    failure_count: int
    forced: bool
    app_token_cache: bytes | None
    object_id: str | None = None


def save_grant(conn: Connection[Any], mailbox_id: int, grant: Grant) -> None:
    """Replace the mailbox's tokens with a new grant (a new generation, no lease, due
    when the grant says)."""
    conn.execute(
        "INSERT INTO mailbox_tokens (mailbox_id, token_cache, home_account_id, access_token,"
        "   access_expires_at, refresh_due_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (mailbox_id) DO UPDATE SET token_cache = EXCLUDED.token_cache,"
        "   home_account_id = EXCLUDED.home_account_id, access_token = EXCLUDED.access_token,"
        "   access_expires_at = EXCLUDED.access_expires_at,"
        "   refresh_due_at = EXCLUDED.refresh_due_at, refresh_requested = false,"
        "   refresh_lease_until = NULL, failure_count = 0,"
        "   generation = mailbox_tokens.generation + 1, updated_at = now()",
        (
            mailbox_id,
            grant.token_cache,
            grant.home_account_id,
            grant.access_token,
            grant.access_expires_at,
            grant.refresh_due_at,
        ),
    )


def claim_due(conn: Connection[Any], lease: timedelta, limit: int) -> list[Claim]:
    """Lease up to ``limit`` due tokens of active mailboxes, earliest due first.

    The order is the caller's order of work: a throttled refresher hands back the rest of
    the batch, so the tokens nearest their due time must come first. RETURNING gives the
    updated rows in no particular order, hence the outer ORDER BY.
    """
    rows = conn.execute(
        "WITH claimed AS ("
        " UPDATE mailbox_tokens t SET refresh_lease_until = now() + %s"
        " FROM mailboxes m LEFT JOIN tenants tn ON tn.tenant_id = m.tenant_id"
        " WHERE m.id = t.mailbox_id AND t.mailbox_id IN ("
        "   SELECT t2.mailbox_id FROM mailbox_tokens t2"
        "   JOIN mailboxes m2 ON m2.id = t2.mailbox_id"
        "   WHERE m2.state = 'active' AND t2.refresh_due_at <= now()"
        "     AND (t2.refresh_lease_until IS NULL OR t2.refresh_lease_until < now())"
        "   ORDER BY t2.refresh_due_at LIMIT %s FOR UPDATE OF t2 SKIP LOCKED)"
        " RETURNING t.mailbox_id, m.address, m.tenant_id, m.auth_kind, t.token_cache,"
        "   t.home_account_id, t.generation, t.failure_count,"
        "   t.refresh_requested AS forced, tn.app_token_cache, m.object_id,"
        "   t.refresh_due_at AS due)"
        " SELECT mailbox_id, address, tenant_id, auth_kind, token_cache, home_account_id,"
        "   generation, failure_count, forced, app_token_cache, object_id"
        " FROM claimed ORDER BY due, mailbox_id",
        (lease, limit),
    ).fetchall()
    return [Claim(**r) for r in rows]


def save_refreshed(conn: Connection[Any], claim: Claim, grant: Grant) -> None:
    """Record a successful refresh, unless a reconnect replaced the tokens meanwhile.
    An app-only row keeps no cache of its own (``grant.token_cache`` is ignored)."""
    conn.execute(
        "UPDATE mailbox_tokens SET token_cache = CASE WHEN %(app)s THEN token_cache"
        "   ELSE %(cache)s END, access_token = %(at)s, access_expires_at = %(exp)s,"
        "   refresh_due_at = %(due)s, refresh_requested = false,"
        "   refresh_lease_until = NULL, failure_count = 0, last_refresh_at = now(),"
        "   updated_at = now()"
        " WHERE mailbox_id = %(id)s AND generation = %(gen)s",
        {
            "app": claim.auth_kind == "app_only",
            "cache": grant.token_cache,
            "at": grant.access_token,
            "exp": grant.access_expires_at,
            "due": grant.refresh_due_at,
            "id": claim.mailbox_id,
            "gen": claim.generation,
        },
    )


def release(conn: Connection[Any], claim: Claim, delay: timedelta, failures: int) -> None:
    """Give the lease back; the token is due again after ``delay``."""
    conn.execute(
        "UPDATE mailbox_tokens SET refresh_lease_until = NULL, refresh_due_at = now() + %s,"
        " failure_count = %s WHERE mailbox_id = %s AND generation = %s",
        (delay, failures, claim.mailbox_id, claim.generation),
    )


def earliest_expiry_seconds(conn: Connection[Any]) -> float | None:
    """Seconds until the first access token of an active mailbox expires (negative when
    one already has); None without any."""
    row = conn.execute(
        "SELECT extract(epoch FROM min(t.access_expires_at) - now()) AS s"
        " FROM mailbox_tokens t JOIN mailboxes m ON m.id = t.mailbox_id"
        " WHERE m.state = 'active'"
    ).fetchone()
    return float(row["s"]) if row and row["s"] is not None else None
