"""Tenants: whether their administrator consented, and their app-only token cache
(encrypted; one per tenant, shared by its app-only mailboxes)."""

from __future__ import annotations

from typing import Any

from psycopg import Connection


def ensure_tenant(conn: Connection[Any], tenant_id: str) -> None:
    conn.execute("INSERT INTO tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))


def record_admin_consent(conn: Connection[Any], tenant_id: str) -> None:
    conn.execute(
        "INSERT INTO tenants (tenant_id, admin_consented_at) VALUES (%s, now())"
        " ON CONFLICT (tenant_id) DO UPDATE SET admin_consented_at = now()",
        (tenant_id,),
    )


def consent(conn: Connection[Any], tenant_id: str) -> dict[str, Any] | None:
    """``{"admin_consented_at", "app_token_cache"}`` of a known tenant; None otherwise."""
    row: dict[str, Any] | None = conn.execute(
        "SELECT admin_consented_at, app_token_cache FROM tenants WHERE tenant_id = %s",
        (tenant_id,),
    ).fetchone()
    return row


def save_app_token_cache(conn: Connection[Any], tenant_id: str, sealed_cache: bytes) -> None:
    conn.execute(
        "UPDATE tenants SET app_token_cache = %s WHERE tenant_id = %s", (sealed_cache, tenant_id)
    )
