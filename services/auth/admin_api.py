"""The admin API (Bearer ``BANDEJA_ADMIN_TOKEN``, docs/openapi.yaml):

- ``GET /api/mailboxes``: a page of mailboxes (filter by state, tenant, address; the
  next page's URL in the ``Link`` header)
- ``POST /api/mailboxes``: register an app-only mailbox
- ``PATCH /api/mailboxes/{id}``: its folder, post-action, poll interval; pause or resume
- ``DELETE /api/mailboxes/{id}``: disconnect it
- ``POST /api/connect-links``: mint a connect link (``connect_links.py``)

The erasure route, ``POST /api/mailboxes/{id}/purge``, sits with the data page in
``data_routes.py``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlencode

import structlog
from pydantic import BaseModel, EmailStr, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common.errors import TransientError
from services.auth import connect_links
from services.auth.admin_credential import require_admin
from services.auth.context import AuthContext
from services.auth.errors import IdentityFailure
from services.auth.grants import sealed_app_cache, sealed_grant
from services.auth.json_api import invalid, read_json
from services.auth.store import listing, mailboxes, tenants

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


MAILBOX_STATES = ("active", "needs_reauth", "paused", "disconnected", "error")
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
TENANT_PATTERN = r"^[A-Za-z0-9.-]{1,100}$"
SEARCH_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"  # PostgreSQL text holds no NUL


class MailboxQuery(BaseModel):
    """``GET /api/mailboxes``'s query string."""

    limit: int = Field(default=PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, min_length=1, max_length=400)
    state: str | None = Field(default=None, pattern="^(" + "|".join(MAILBOX_STATES) + ")$")
    tenant_id: str | None = Field(default=None, pattern=TENANT_PATTERN)
    q: str | None = Field(default=None, pattern=SEARCH_PATTERN)


def encode_cursor(address: str) -> str:
    """Opaque to clients: where the next page starts (after this address)."""
    return base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        address = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    return None if "\x00" in address else address  # PostgreSQL text holds no NUL


class MailboxSettings(BaseModel):
    folder: str | None = Field(default=None, pattern=FOLDER_PATTERN)
    post_action: str | None = Field(default=None, pattern="^(mark_read|move|flag)$")
    move_to_folder: str | None = Field(default=None, pattern=FOLDER_PATTERN)
    poll_interval: float | None = Field(default=None, ge=5, le=86400)
    state: str | None = Field(default=None, pattern="^(active|paused)$")


def routes(ctx: AuthContext) -> list[Route]:
    """The admin API's routes, each behind the admin credential."""

    def api_list(request: Request) -> Response:
        return _denied(ctx, request) or list_mailboxes(ctx, request)

    async def api_register(request: Request) -> Response:
        if denied := _denied(ctx, request):
            return denied
        return await run_in_threadpool(register_app_only, ctx, await read_json(request))

    async def api_update(request: Request) -> Response:
        if denied := _denied(ctx, request):
            return denied
        mailbox_id = int(request.path_params["mailbox_id"])
        return await run_in_threadpool(update_settings, ctx, mailbox_id, await read_json(request))

    def api_disconnect(request: Request) -> Response:
        return _denied(ctx, request) or disconnect(ctx, int(request.path_params["mailbox_id"]))

    async def api_connect_links(request: Request) -> Response:
        if denied := _denied(ctx, request):
            return denied
        return await run_in_threadpool(connect_links.mint, ctx, await read_json(request))

    return [
        Route("/api/mailboxes", api_list, methods=["GET"]),
        Route("/api/mailboxes", api_register, methods=["POST"]),
        Route("/api/mailboxes/{mailbox_id:int}", api_update, methods=["PATCH"]),
        Route("/api/mailboxes/{mailbox_id:int}", api_disconnect, methods=["DELETE"]),
        Route("/api/connect-links", api_connect_links, methods=["POST"]),
    ]


def _denied(ctx: AuthContext, request: Request) -> Response | None:
    return require_admin(ctx.settings, request)


def list_mailboxes(ctx: AuthContext, request: Request) -> Response:
    """A page of mailboxes by address; ``Link: <…>; rel="next"`` when more follow
    (RFC 8288), its ``cursor`` parameter also in the ``Next-Cursor`` header."""
    try:
        query = MailboxQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        return invalid(exc)
    after = decode_cursor(query.cursor) if query.cursor is not None else None
    if query.cursor is not None and after is None:
        return JSONResponse({"error": "invalid cursor"}, status_code=422)
    wanted = listing.MailboxFilter(state=query.state, tenant_id=query.tenant_id, search=query.q)
    with ctx.pool.connection() as conn:
        page = listing.page_of_mailboxes(conn, wanted, after, query.limit)
    headers = {}
    if page.last_address is not None:
        cursor = encode_cursor(page.last_address)
        following = query.model_dump(exclude_none=True) | {"cursor": cursor}
        url = f"{ctx.settings.public_url}/api/mailboxes?{urlencode(following)}"
        headers = {"Link": f'<{url}>; rel="next"', "Next-Cursor": cursor}
    return JSONResponse([mailbox_json(r) for r in page.rows], headers=headers)


def mailbox_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "address": row["address"],
        "tenant_id": row["tenant_id"],
        "auth_kind": row["auth_kind"],
        "reference": row["reference"],
        "state": row["state"],
        "state_reason": row["state_reason"],
        "last_fetch_at": row["last_fetch_at"].isoformat() if row["last_fetch_at"] else None,
        "last_error": row["last_error"],
    }


def disconnect(ctx: AuthContext, mailbox_id: int) -> Response:
    with ctx.pool.connection() as conn, conn.transaction():
        changed = mailboxes.disconnect(conn, mailbox_id)
    return JSONResponse({"disconnected": changed}, status_code=200 if changed else 404)


def register_app_only(ctx: AuthContext, body: Any) -> Response:
    try:
        wanted = AppOnlyMailbox.model_validate(body)
    except ValidationError as exc:
        return invalid(exc)
    with ctx.pool.connection() as conn:
        tenant = tenants.consent(conn, wanted.tenant_id)
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
            status_code=502 if isinstance(failure, TransientError) else 409,
        )
    with ctx.pool.connection() as conn, conn.transaction():
        if (app_cache := sealed_app_cache(ctx.cipher, token)) is not None:
            tenants.save_app_token_cache(conn, wanted.tenant_id, app_cache)
        mailbox = mailboxes.connect_mailbox(
            conn,
            address=str(wanted.address).lower(),
            tenant_id=wanted.tenant_id,
            auth_kind="app_only",
            grant=sealed_grant(ctx.cipher, token, delegated=False),
            reference=wanted.reference,
        )
        mailboxes.configure(
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
        return invalid(exc)
    changes = wanted.model_dump(exclude_none=True)
    if changes.get("post_action") == "move" and not changes.get("move_to_folder"):
        return JSONResponse({"error": "post_action 'move' needs move_to_folder"}, status_code=422)
    with ctx.pool.connection() as conn, conn.transaction():
        found = mailboxes.configure(conn, mailbox_id, changes)
    return JSONResponse({"updated": found}, status_code=200 if found else 404)
