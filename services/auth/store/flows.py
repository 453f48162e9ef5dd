"""OAuth flows in flight: written by ``/connect`` and ``/admin-consent``, consumed once
by their callback, deleted after expiry."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from psycopg import Connection

_STATE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


def save_flow(
    conn: Connection[Any],
    *,
    state: str,
    kind: str,
    flow: bytes,
    login_hint: str | None,
    lang: str,
    ttl: float,
    browser_binding: bytes,
    ticket_hash: bytes | None = None,
) -> None:
    conn.execute(
        "INSERT INTO oauth_flows (state, kind, flow, login_hint, lang, expires_at,"
        "   browser_binding, ticket_hash)"
        " VALUES (%s, %s, %s, %s, %s, now() + %s, %s, %s)",
        (
            state,
            kind,
            flow,
            login_hint,
            lang,
            timedelta(seconds=ttl),
            browser_binding,
            ticket_hash,
        ),
    )


def take_flow(
    conn: Connection[Any], state: str, kind: str, browser_binding: bytes | None
) -> dict[str, Any] | None:
    """Consume a flow exactly once, only from the browser that started it; None for an
    unknown, replayed, expired or foreign one."""
    if not _STATE.match(state) or browser_binding is None:
        return None  # not a state we could have issued (and PostgreSQL text refuses NUL)
    row: dict[str, Any] | None = conn.execute(
        "UPDATE oauth_flows SET consumed_at = now()"
        " WHERE state = %s AND kind = %s AND consumed_at IS NULL AND expires_at > now()"
        "   AND browser_binding = %s"
        " RETURNING flow, login_hint, lang, ticket_hash",
        (state, kind, browser_binding),
    ).fetchone()
    return row


def flow_pending(conn: Connection[Any], state: str, kind: str) -> bool:
    """A live flow with this state exists (so a refused callback came from another browser)."""
    if not _STATE.match(state):
        return False
    return (
        conn.execute(
            "SELECT 1 FROM oauth_flows WHERE state = %s AND kind = %s AND consumed_at IS NULL"
            " AND expires_at > now()",
            (state, kind),
        ).fetchone()
        is not None
    )


def purge_flows(conn: Connection[Any]) -> int:
    """Delete flows past their expiry (used or not): take_flow refuses them already."""
    return conn.execute("DELETE FROM oauth_flows WHERE expires_at < now()").rowcount
