"""The auth service's tables: OAuth flows in flight, mailboxes, encrypted tokens."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from common import events
from common.db import MAILBOX_CHANNEL

EVENT_SOURCE = "urn:bandeja:auth"
_STATE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


@dataclass(frozen=True)
class Mailbox:
    id: int
    address: str
    tenant_id: str
    state: str
    auth_kind: str


def save_flow(
    conn: Connection[Any],
    *,
    state: str,
    kind: str,
    flow: bytes,
    login_hint: str | None,
    lang: str,
    ttl: float,
) -> None:
    conn.execute(
        "INSERT INTO oauth_flows (state, kind, flow, login_hint, lang, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + %s)",
        (state, kind, flow, login_hint, lang, timedelta(seconds=ttl)),
    )


def take_flow(conn: Connection[Any], state: str, kind: str) -> dict[str, Any] | None:
    """Consume a flow exactly once; None for an unknown, replayed or expired state."""
    if not _STATE.match(state):
        return None  # not a state we could have issued (and PostgreSQL text refuses NUL)
    row: dict[str, Any] | None = conn.execute(
        "UPDATE oauth_flows SET consumed_at = now()"
        " WHERE state = %s AND kind = %s AND consumed_at IS NULL AND expires_at > now()"
        " RETURNING flow, login_hint, lang",
        (state, kind),
    ).fetchone()
    return row


def purge_flows(conn: Connection[Any]) -> int:
    """Delete flows past their expiry (used or not): take_flow refuses them already."""
    return conn.execute("DELETE FROM oauth_flows WHERE expires_at < now()").rowcount


def _mailbox_event(
    event_type: str, mailbox: Mailbox, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return events.cloud_event(
        event_type,
        event_id=uuid.uuid4(),  # written once per state transition, inside that transaction
        source=EVENT_SOURCE,
        subject=f"mailbox/{mailbox.id}",
        data={
            "mailbox_id": mailbox.id,
            "mailbox": mailbox.address,
            "tenant_id": mailbox.tenant_id,
            **(extra or {}),
        },
    )


def connect_mailbox(
    conn: Connection[Any],
    *,
    address: str,
    tenant_id: str,
    auth_kind: str,
    token_cache: bytes | None,
    home_account_id: str | None,
    access_token: bytes,
    access_expires_at: datetime,
    refresh_due_at: datetime,
) -> Mailbox:
    """Create or reconnect a mailbox: new tokens, state ``active``, a ``connected`` event.

    A reconnect keeps the mailbox row (and so its folder position): mail that arrived
    while it waited is still unread on the server and is fetched on the next poll.
    """
    conn.execute("INSERT INTO tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))
    row = conn.execute(
        "INSERT INTO mailboxes (address, tenant_id, auth_kind, state, next_fetch_at)"
        " VALUES (%s, %s, %s, 'active', now())"
        " ON CONFLICT (address) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,"
        "   auth_kind = EXCLUDED.auth_kind, state = 'active', state_reason = NULL,"
        "   last_error = NULL, error_count = 0, next_fetch_at = now(), updated_at = now()"
        " RETURNING id, address, tenant_id, state, auth_kind",
        (address, tenant_id, auth_kind),
    ).fetchone()
    assert row is not None
    mailbox = Mailbox(**row)
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
        (mailbox.id, token_cache, home_account_id, access_token, access_expires_at, refresh_due_at),
    )
    events.add_to_outbox(
        conn, _mailbox_event(events.MAILBOX_CONNECTED, mailbox, {"auth_kind": auth_kind})
    )
    conn.execute(f"NOTIFY {MAILBOX_CHANNEL}")  # the scheduler fetches it at once
    return mailbox


def list_mailboxes(conn: Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, address, tenant_id, auth_kind, state, state_reason, last_fetch_at,"
        " last_error, created_at, updated_at FROM mailboxes ORDER BY address"
    ).fetchall()


def get_mailbox(conn: Connection[Any], mailbox_id: int) -> Mailbox | None:
    row = conn.execute(
        "SELECT id, address, tenant_id, state, auth_kind FROM mailboxes WHERE id = %s",
        (mailbox_id,),
    ).fetchone()
    return Mailbox(**row) if row else None


def move_to_needs_reauth(
    conn: Connection[Any],
    mailbox_id: int,
    reason: dict[str, Any],
    message: dict[str, str],
    reconnect_url: str,
) -> bool:
    """Transition to ``needs_reauth``; the event is written only on the transition."""
    row = conn.execute(
        "UPDATE mailboxes SET state = 'needs_reauth', state_reason = %s, last_error = %s,"
        " updated_at = now() WHERE id = %s AND state IN ('active', 'error')"
        " RETURNING id, address, tenant_id, state, auth_kind",
        (Jsonb(reason), message["en"], mailbox_id),
    ).fetchone()
    if row is None:
        return False
    event = _mailbox_event(
        events.MAILBOX_REAUTH_NEEDED,
        Mailbox(**row),
        {"reason": reason, "message": message, "reconnect_url": reconnect_url},
    )
    events.add_to_outbox(conn, event)
    return True


def disconnect(conn: Connection[Any], mailbox_id: int) -> bool:
    row = conn.execute(
        "UPDATE mailboxes SET state = 'disconnected', updated_at = now()"
        " WHERE id = %s AND state <> 'disconnected'"
        " RETURNING id, address, tenant_id, state, auth_kind",
        (mailbox_id,),
    ).fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM mailbox_tokens WHERE mailbox_id = %s", (mailbox_id,))
    events.add_to_outbox(conn, _mailbox_event(events.MAILBOX_DISCONNECTED, Mailbox(**row)))
    return True


def mailbox_counts_by_state(conn: Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT state, count(*) AS n FROM mailboxes GROUP BY state").fetchall()
    return {r["state"]: r["n"] for r in rows}


_CONFIGURABLE = ("folder", "post_action", "move_to_folder", "poll_interval")


def configure(conn: Connection[Any], mailbox_id: int, changes: dict[str, Any]) -> bool:
    """Apply per-mailbox settings; pausing and resuming only between active and paused."""
    row = conn.execute(
        "SELECT id FROM mailboxes WHERE id = %s FOR UPDATE", (mailbox_id,)
    ).fetchone()
    if row is None:
        return False
    for column in _CONFIGURABLE:
        if column in changes:
            conn.execute(
                f"UPDATE mailboxes SET {column} = %s, updated_at = now() WHERE id = %s",
                (changes[column], mailbox_id),
            )
    if "state" in changes:
        conn.execute(
            "UPDATE mailboxes SET state = %s, next_fetch_at = now(), updated_at = now()"
            " WHERE id = %s AND state IN ('active', 'paused')",
            (changes["state"], mailbox_id),
        )
    return True


def move_to_error(
    conn: Connection[Any], mailbox_id: int, reason: dict[str, Any], message: str
) -> bool:
    """Transition to ``error`` (the operator must act); the event only on the transition."""
    row = conn.execute(
        "UPDATE mailboxes SET state = 'error', state_reason = %s, last_error = %s,"
        " updated_at = now() WHERE id = %s AND state = 'active'"
        " RETURNING id, address, tenant_id, state, auth_kind",
        (Jsonb(reason), message, mailbox_id),
    ).fetchone()
    if row is None:
        return False
    events.add_to_outbox(
        conn, _mailbox_event(events.MAILBOX_ERROR, Mailbox(**row), {"error": message})
    )
    return True
