"""Where Microsoft sends people back: finish a sign-in or an admin consent.

Every way it can go wrong ends on a page that says what to do next. ``state`` is
single-use and expiring; a forged, replayed or expired one is refused before anything
else is looked at.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import structlog
from starlette.requests import Request
from starlette.responses import Response

from services.auth import browser_binding, pages
from services.auth.admission import admit
from services.auth.classify import Classification, classify_error
from services.auth.context import AuthContext
from services.auth.errors import IdentityFailure
from services.auth.grants import sealed_grant
from services.auth.id_token import SignedInAccount, signed_in_account
from services.auth.identity import TokenResult
from services.auth.messages import human_message
from services.auth.store import flows, mailboxes, tenants, tickets

log = structlog.get_logger(__name__)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CALLBACK_PARAMS = (
    "code",
    "state",
    "error",
    "error_description",
    "error_subcode",
    "session_state",
    "client_info",
    "admin_consent",
    "tenant",
    "scope",
)


def finish_connect(ctx: AuthContext, request: Request) -> Response:
    params = {k: v for k, v in request.query_params.items() if k in _CALLBACK_PARAMS}
    flow_row = _take_flow(ctx, request, params.get("state", ""), "connect")
    if not isinstance(flow_row, dict):
        return flow_row
    lang = pages.pick_lang(request, flow_row["lang"])
    login_hint = flow_row["login_hint"]
    if "error" in params:
        return failure_page(ctx, request, lang, callback_error(params), login_hint, params)
    flow = json.loads(ctx.cipher.decrypt(flow_row["flow"]))
    try:
        result = ctx.identity.finish_sign_in(flow, params)
    except IdentityFailure as failure:
        return failure_page(ctx, request, lang, failure.classification, login_hint)
    account = signed_in_account(result.claims)
    if account is None:
        incomplete = Classification("config", "id_token_incomplete", "invalid_id_token")
        return failure_page(ctx, request, lang, incomplete, login_hint)
    if refused := _account_refused(ctx, request, lang, account, login_hint):
        return refused
    return _connect(ctx, request, lang, account, result, flow_row["ticket_hash"])


def _account_refused(
    ctx: AuthContext,
    request: Request,
    lang: str,
    account: SignedInAccount,
    login_hint: str | None,
) -> Response | None:
    allowed = ctx.settings.allowed_tenant_ids
    if allowed and account.tenant_id not in allowed:
        log.warning("sign_in_tenant_not_allowed", tenant_id=account.tenant_id)
        return pages.refusal(request, lang, "tenant_not_allowed")
    if login_hint and account.username != login_hint:
        # Someone asked to connect one mailbox and signed in as another: connecting the
        # other one silently would surprise them (and their administrator).
        wrong = Classification("reauth", "wrong_account", "account_mismatch")
        return failure_page(ctx, request, lang, wrong, login_hint)
    return None


def _connect(
    ctx: AuthContext,
    request: Request,
    lang: str,
    account: SignedInAccount,
    result: TokenResult,
    ticket_hash: bytes | None,
) -> Response:
    """Connect the account's mailbox if admission allows, consuming the ticket with it."""
    with ctx.pool.connection() as conn, conn.transaction():
        ticket = tickets.find_ticket(conn, ticket_hash) if ticket_hash else None
        if ticket_hash and ticket is None:
            return pages.refusal(request, lang, "bad_ticket")
        rows = mailboxes.candidates_for_account(
            conn, account.tenant_id, account.object_id, account.username
        )
        admission = admit(
            rows,
            account,
            ticket_minted_at=ticket["created_at"] if ticket else None,
            ticket_required=ctx.settings.connect_requires_ticket,
        )
        if admission.refusal is not None:
            _log_refusal(admission.refusal, rows, account)
            return pages.refusal(request, lang, admission.refusal)
        if ticket_hash and tickets.use_ticket(conn, ticket_hash) is None:
            return pages.refusal(request, lang, "bad_ticket")  # used meanwhile by a twin flow
        mailbox = mailboxes.connect_delegated(
            conn,
            existing_id=admission.existing_id,
            address=account.username,
            tenant_id=account.tenant_id,
            object_id=account.object_id,
            reference=ticket["reference"] if ticket else None,
            grant=sealed_grant(ctx.cipher, result, delegated=True),
        )
        if ticket_hash:
            tickets.ticket_used_for(conn, ticket_hash, mailbox.id)
    log.info("mailbox_connected", mailbox_id=mailbox.id, tenant_id=account.tenant_id)
    return pages.render(
        request,
        lang=lang,
        ok=True,
        outcome="connected",
        title=pages.text("connected_title", lang),
        message=pages.text("connected", lang, address=account.username),
    )


def _take_flow(
    ctx: AuthContext, request: Request, state: str, kind: str
) -> dict[str, Any] | Response:
    """The flow this browser started with ``state``, consumed; else the refusal page."""
    binding = browser_binding.presented(ctx.settings, request)
    with ctx.pool.connection() as conn:
        flow_row = flows.take_flow(conn, state, kind, binding) if state else None
        foreign = flow_row is None and bool(state) and flows.flow_pending(conn, state, kind)
    if flow_row is not None:
        return flow_row
    lang = pages.pick_lang(request)
    start = f"{ctx.settings.public_url}/{'connect' if kind == 'connect' else 'admin-consent'}"
    if foreign:
        # A real flow, finished in a browser that did not start it: a forwarded or planted
        # callback URL (login CSRF), or cookies blocked.
        log.warning("oauth_callback_other_browser", kind=kind)
        return pages.refusal(request, lang, "other_browser")
    log.warning("oauth_callback_bad_state", kind=kind)
    return pages.refusal(request, lang, "bad_state", start)


def _log_refusal(reason: str, rows: list[dict[str, Any]], account: SignedInAccount) -> None:
    """The operator's record of a refused takeover (ids only: no address, no token)."""
    log.warning(
        "mailbox_connect_refused",
        reason=reason,
        mailbox_ids=[r["id"] for r in rows],
        recorded_tenant_ids=sorted({r["tenant_id"] for r in rows}),
        recorded_object_ids=sorted({r["object_id"] for r in rows if r["object_id"]}),
        tenant_id=account.tenant_id,
        object_id=account.object_id,
    )


def callback_error(params: dict[str, str]) -> Classification:
    """Classify the ``error`` a callback carries (its AADSTS code is in the description)."""
    description = params.get("error_description", "")
    codes = [int(c) for c in _aadsts_codes(description)]
    if params.get("error") == "access_denied" and params.get("error_subcode") == "cancel":
        return Classification(
            "reauth", "user_cancelled", "access_denied", codes[0] if codes else None
        )
    return classify_error({"error": params.get("error"), "error_codes": codes})


# AADSTS codes have at most 7 digits; a longer run is not a code (and int() of thousands
# of attacker-chosen digits raises). Only the description's start is read: it leads with it.
_AADSTS = re.compile(r"AADSTS(\d{1,9})(?!\d)")


def _aadsts_codes(description: str) -> list[str]:
    return _AADSTS.findall(description[:4096])


def failure_page(
    ctx: AuthContext,
    request: Request,
    lang: str,
    failure: Classification,
    login_hint: str | None,
    params: dict[str, str] | None = None,
) -> Response:
    log.warning(
        "sign_in_failed",
        reason_class=failure.reason_class,
        reason=failure.reason,
        aadsts=failure.aadsts,
    )
    message = human_message(failure.reason, failure.reason_class)[lang]
    extra: dict[str, Any] = {}
    if failure.admin_can_fix:
        extra["admin_consent_url"] = f"{ctx.settings.public_url}/admin-consent"
    retry = f"{ctx.settings.public_url}/connect" + (
        f"?{urlencode({'login_hint': login_hint})}" if login_hint else ""
    )
    code = f"AADSTS{failure.aadsts}" if failure.aadsts else failure.error
    return pages.render(
        request,
        lang=lang,
        ok=False,
        outcome=failure.reason,
        status_code=400,
        title=pages.text("failed_title", lang),
        message=message,
        retry_url=retry,
        detail=code,
        **extra,
    )


def finish_admin_consent(ctx: AuthContext, request: Request) -> Response:
    params = {k: v for k, v in request.query_params.items() if k in _CALLBACK_PARAMS}
    flow_row = _take_flow(ctx, request, params.get("state", ""), "admin_consent")
    if not isinstance(flow_row, dict):
        return flow_row
    lang = pages.pick_lang(request, flow_row["lang"])
    if "error" in params or params.get("admin_consent", "").lower() != "true":
        return failure_page(ctx, request, lang, callback_error(params), None, params)
    tenant = params.get("tenant", "")
    if not _GUID.match(tenant):
        failure = Classification("admin", "tenant_not_found", "invalid_tenant")
        return failure_page(ctx, request, lang, failure, None, params)
    allowed = ctx.settings.allowed_tenant_ids
    if allowed and tenant.lower() not in allowed:
        log.warning("admin_consent_tenant_not_allowed", tenant_id=tenant)
        return pages.refusal(request, lang, "tenant_not_allowed")
    # The tenant parameter is unsigned (docs/architecture.md#identity-admin-consent): prove the
    # consent by obtaining an app-only token for that tenant before recording anything.
    try:
        ctx.identity.app_only_token(tenant, None)
    except IdentityFailure as failure:
        return failure_page(ctx, request, lang, failure.classification, None)
    with ctx.pool.connection() as conn:
        tenants.record_admin_consent(conn, tenant)
    log.info("admin_consent_recorded", tenant_id=tenant)
    return pages.render(
        request,
        lang=lang,
        ok=True,
        outcome="admin_consented",
        title=pages.text("admin_done_title", lang),
        message=pages.text("admin_done", lang, tenant=tenant),
    )
