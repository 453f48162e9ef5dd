"""The admin API (Bearer ``BANDEJA_ADMIN_TOKEN``): list, register, configure, disconnect."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, EmailStr, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth import store
from services.auth.identity import IdentityFailure
from services.auth.schedule import next_refresh_at

if TYPE_CHECKING:
    from services.auth.app import AuthContext

log = structlog.get_logger(__name__)

FOLDER_PATTERN = r"^[^\x00-\x1f\x7f*%]{1,200}$"


class AppOnlyMailbox(BaseModel):
    """A shared or service mailbox of a tenant whose administrator consented (IMAP.AccessAsApp)."""

    address: EmailStr
    tenant_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$")
    folder: str = Field(default="INBOX", pattern=FOLDER_PATTERN)
    post_action: str = Field(default="mark_read", pattern="^(mark_read|move|flag)$")
    move_to_folder: str | None = Field(default=None, pattern=FOLDER_PATTERN)
    # The ERP's own id for its customer, sent in every event of this mailbox.
    reference: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    )


class MailboxSettings(BaseModel):
    folder: str | None = Field(default=None, pattern=FOLDER_PATTERN)
    post_action: str | None = Field(default=None, pattern="^(mark_read|move|flag)$")
    move_to_folder: str | None = Field(default=None, pattern=FOLDER_PATTERN)
    poll_interval: float | None = Field(default=None, ge=5, le=86400)
    state: str | None = Field(default=None, pattern="^(active|paused)$")


def _invalid(exc: ValidationError) -> JSONResponse:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()
    ]
    return JSONResponse({"error": "invalid request", "details": errors}, status_code=422)


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def register_app_only(ctx: AuthContext, body: Any) -> Response:
    try:
        wanted = AppOnlyMailbox.model_validate(body)
    except ValidationError as exc:
        return _invalid(exc)
    with ctx.pool.connection() as conn:
        tenant = conn.execute(
            "SELECT admin_consented_at, app_token_cache FROM tenants WHERE tenant_id = %s",
            (wanted.tenant_id,),
        ).fetchone()
    if tenant is None or tenant["admin_consented_at"] is None:
        return JSONResponse(
            {
                "error": "tenant has not granted admin consent",
                "admin_consent_url": (
                    f"{ctx.settings.public_url}/admin-consent?tenant={wanted.tenant_id}"
                ),
            },
            status_code=409,
        )
    cached = ctx.cipher.decrypt(tenant["app_token_cache"]) if tenant["app_token_cache"] else None
    try:
        token = ctx.identity.app_only_token(wanted.tenant_id, cached)
    except IdentityFailure as failure:
        c = failure.classification
        return JSONResponse(
            {
                "error": "token request failed",
                "class": c.reason_class,
                "reason": c.reason,
                "aadsts": c.aadsts,
            },
            status_code=502 if c.reason_class == "transient" else 409,
        )
    now = datetime.now(UTC)
    with ctx.pool.connection() as conn, conn.transaction():
        if token.cache_state:
            conn.execute(
                "UPDATE tenants SET app_token_cache = %s WHERE tenant_id = %s",
                (ctx.cipher.encrypt(token.cache_state), wanted.tenant_id),
            )
        mailbox = store.connect_mailbox(
            conn,
            address=str(wanted.address).lower(),
            tenant_id=wanted.tenant_id,
            auth_kind="app_only",
            token_cache=None,
            home_account_id=None,
            access_token=ctx.cipher.encrypt(token.access_token),
            access_expires_at=token.expires_at,
            refresh_due_at=next_refresh_at(now, token.expires_at, random.Random()),  # noqa: S311
            reference=wanted.reference,
        )
        store.configure(
            conn,
            mailbox.id,
            {
                "folder": wanted.folder,
                "post_action": wanted.post_action,
                "move_to_folder": wanted.move_to_folder,
            },
        )
    log.info("app_only_mailbox_registered", mailbox_id=mailbox.id, tenant_id=wanted.tenant_id)
    return JSONResponse(
        {"id": mailbox.id, "address": mailbox.address, "state": "active"}, status_code=201
    )


def update_settings(ctx: AuthContext, mailbox_id: int, body: Any) -> Response:
    try:
        wanted = MailboxSettings.model_validate(body)
    except ValidationError as exc:
        return _invalid(exc)
    changes = wanted.model_dump(exclude_none=True)
    if changes.get("post_action") == "move" and not changes.get("move_to_folder"):
        return JSONResponse({"error": "post_action 'move' needs move_to_folder"}, status_code=422)
    with ctx.pool.connection() as conn, conn.transaction():
        found = store.configure(conn, mailbox_id, changes)
    return JSONResponse({"updated": found}, status_code=200 if found else 404)
