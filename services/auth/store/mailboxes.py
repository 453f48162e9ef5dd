"""Mailboxes and their states; every state transition writes its event to the outbox in
the same transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from common import events
from common.db import MAILBOX_CHANNEL
from services.auth.store import tenants, tokens

EVENT_SOURCE = "urn:bandeja:auth"


@dataclass(frozen=True)
class Mailbox:
    id: int
    address: str
    tenant_id: str
    state: str
    auth_kind: str
    reference: str | None = None  # the ERP's id for its customer (connect links)


_MAILBOX = "id, address, tenant_id, state, auth_kind, erp_reference AS reference"


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
            "reference": mailbox.reference,
            **(extra or {}),
        },
    )


def connect_mailbox(
    conn: Connection[Any],
    *,
    address: str,
    tenant_id: str,
    auth_kind: str,
    grant: tokens.Grant,
    reference: str | None = None,
) -> Mailbox:
    """Create or reconnect an app-only mailbox (keyed by address: it has no user)."""
    tenants.ensure_tenant(conn, tenant_id)
    row = conn.execute(
        "INSERT INTO mailboxes (address, tenant_id, auth_kind, state, next_fetch_at,"
        "   erp_reference)"
        " VALUES (%s, %s, %s, 'active', now(), %s)"
        " ON CONFLICT (address) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,"
        "   auth_kind = EXCLUDED.auth_kind, state = 'active', state_reason = NULL,"
        "   last_error = NULL, error_count = 0, next_fetch_at = now(), updated_at = now(),"
        "   disconnected_at = NULL,"
        "   erp_reference = COALESCE(EXCLUDED.erp_reference, mailboxes.erp_reference)"
        f" RETURNING {_MAILBOX}",
        (address, tenant_id, auth_kind, reference),
    ).fetchone()
    assert row is not None
    mailbox = Mailbox(**row)
    _save_grant_and_announce(conn, mailbox, grant)
    return mailbox


def candidates_for_account(
    conn: Connection[Any], tenant_id: str, object_id: str, address: str
) -> list[dict[str, Any]]:
    """The rows a sign-in could be about (its account's, its address's), locked."""
    return conn.execute(
        "SELECT id, address, tenant_id, object_id, state, auth_kind, disconnected_at"
        " FROM mailboxes WHERE (tenant_id = %s AND object_id = %s) OR address = %s"
        " ORDER BY id FOR UPDATE",
        (tenant_id, object_id, address),
    ).fetchall()


def connect_delegated(
    conn: Connection[Any],
    *,
    existing_id: int | None,
    address: str,
    tenant_id: str,
    object_id: str,
    reference: str | None,
    grant: tokens.Grant,
) -> Mailbox:
    """Connect a signed-in account's mailbox (new, or the row admission chose): new tokens,
    state ``active``, a ``connected`` event.

    A reconnect keeps the mailbox row (and so its folder position): mail that arrived
    while it waited is still unread on the server and is fetched on the next poll. The
    address follows the account (a renamed user keeps their mailbox).
    """
    tenants.ensure_tenant(conn, tenant_id)
    values = {
        "id": existing_id,
        "address": address,
        "tid": tenant_id,
        "oid": object_id,
        "reference": reference,
    }
    if existing_id is None:
        row = conn.execute(
            "INSERT INTO mailboxes (address, tenant_id, object_id, auth_kind, state,"
            "   next_fetch_at, erp_reference)"
            " VALUES (%(address)s, %(tid)s, %(oid)s, 'delegated', 'active', now(),"
            f"   %(reference)s) RETURNING {_MAILBOX}",
            values,
        ).fetchone()
    else:
        row = conn.execute(
            "UPDATE mailboxes SET address = %(address)s, tenant_id = %(tid)s,"
            "   object_id = %(oid)s, auth_kind = 'delegated', state = 'active',"
            "   state_reason = NULL, last_error = NULL, error_count = 0,"
            "   next_fetch_at = now(), updated_at = now(), disconnected_at = NULL,"
            "   erp_reference = COALESCE(%(reference)s, erp_reference)"
            f" WHERE id = %(id)s RETURNING {_MAILBOX}",
            values,
        ).fetchone()
    assert row is not None
    mailbox = Mailbox(**row)
    _save_grant_and_announce(conn, mailbox, grant)
    return mailbox


def _save_grant_and_announce(conn: Connection[Any], mailbox: Mailbox, grant: tokens.Grant) -> None:
    tokens.save_grant(conn, mailbox.id, grant)
    events.add_to_outbox(
        conn,
        _mailbox_event(events.MAILBOX_CONNECTED, mailbox, {"auth_kind": mailbox.auth_kind}),
    )
    conn.execute(f"NOTIFY {MAILBOX_CHANNEL}")  # the scheduler fetches it at once


def learn_account(conn: Connection[Any], mailbox_id: int, tenant_id: str, object_id: str) -> bool:
    """Record the account of a row connected before object ids were kept (from a refresh's
    id_token), unless the row already has one or another row is that account."""
    row = conn.execute(
        "UPDATE mailboxes SET object_id = %(oid)s, updated_at = now()"
        " WHERE id = %(id)s AND object_id IS NULL AND tenant_id = %(tid)s"
        "   AND NOT EXISTS (SELECT 1 FROM mailboxes o"
        "                   WHERE o.tenant_id = %(tid)s AND o.object_id = %(oid)s)"
        " RETURNING id",
        {"id": mailbox_id, "tid": tenant_id, "oid": object_id},
    ).fetchone()
    return row is not None


def disconnection(conn: Connection[Any], address: str) -> dict[str, Any] | None:
    """``{"at": …}`` when an administrator disconnected the mailbox at ``address`` (``at``
    is None for a disconnection older than its recording); None when it is not."""
    row: dict[str, Any] | None = conn.execute(
        "SELECT disconnected_at AS at FROM mailboxes WHERE address = %s AND state = 'disconnected'",
        (address,),
    ).fetchone()
    return row


def reconnectable(conn: Connection[Any], address: str) -> bool:
    """A delegated mailbox waiting for its owner to sign in again (``needs_reauth``)."""
    row = conn.execute(
        "SELECT 1 FROM mailboxes WHERE address = %s AND state = 'needs_reauth'"
        " AND auth_kind = 'delegated'",
        (address,),
    ).fetchone()
    return row is not None


def get_mailbox(conn: Connection[Any], mailbox_id: int) -> Mailbox | None:
    row = conn.execute(f"SELECT {_MAILBOX} FROM mailboxes WHERE id = %s", (mailbox_id,)).fetchone()
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
        f" RETURNING {_MAILBOX}",
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
        "UPDATE mailboxes SET state = 'disconnected', disconnected_at = now(),"
        " updated_at = now() WHERE id = %s AND state <> 'disconnected'"
        f" RETURNING {_MAILBOX}",
        (mailbox_id,),
    ).fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM mailbox_tokens WHERE mailbox_id = %s", (mailbox_id,))
    events.add_to_outbox(conn, _mailbox_event(events.MAILBOX_DISCONNECTED, Mailbox(**row)))
    return True


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
