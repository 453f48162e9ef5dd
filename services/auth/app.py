"""The auth service's HTTP surface (docs/architecture.md#contracts-http)."""

from __future__ import annotations

import json
import re
import secrets
import time
from urllib.parse import urlencode

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from common.health import Check, health_routes
from common.settings import Settings
from services.auth import (
    admin_api,
    browser_binding,
    callback,
    connect_links,
    data_routes,
    metrics,
    pages,
    rules_api,
    status_page,
)
from services.auth.context import AuthContext
from services.auth.errors import IdentityFailure
from services.auth.page_headers import PageHeaders
from services.auth.pages import pick_lang
from services.auth.rate_limit import PublicRateLimit
from services.auth.store import flows, mailboxes, tickets

log = structlog.get_logger(__name__)


def create_app(
    ctx: AuthContext, liveness: dict[str, Check], readiness: dict[str, Check]
) -> Starlette:
    def connect(request: Request) -> Response:
        return start_connect(ctx, request)

    def oauth_callback(request: Request) -> Response:
        return callback.finish_connect(ctx, request)

    def admin_consent(request: Request) -> Response:
        return start_admin_consent(ctx, request)

    def admin_consent_callback(request: Request) -> Response:
        return callback.finish_admin_consent(ctx, request)

    def status(request: Request) -> Response:
        return status_page.render_status(ctx, request)

    async def status_login(request: Request) -> Response:
        return await status_page.login(ctx, request)

    routes = [
        Route("/connect", connect),
        Route("/oauth/callback", oauth_callback),
        Route("/admin-consent", admin_consent),
        Route("/admin-consent/callback", admin_consent_callback),
        *admin_api.routes(ctx),
        Route("/status", status, methods=["GET"]),
        Route("/status/login", status_login, methods=["POST"]),
        *health_routes(liveness, readiness),
        *data_routes.routes(ctx),
        *rules_api.routes(ctx),
    ]
    middleware = [
        Middleware(RequestMetrics),  # outermost: counts the 429s too
        Middleware(PageHeaders),
        Middleware(PublicRateLimit, limits=ctx.settings.public_rate_limits),
    ]
    return Starlette(routes=routes, middleware=middleware)


def start_connect(ctx: AuthContext, request: Request) -> Response:
    lang = pick_lang(request)
    ticket_hash: bytes | None = None
    if "ticket" in request.query_params:
        ticket_hash = connect_links.ticket_hash(request.query_params["ticket"])
        with ctx.pool.connection() as conn:
            ticket = tickets.find_ticket(conn, ticket_hash) if ticket_hash else None
        if ticket is None:
            return pages.refusal(request, lang, "bad_ticket")
        login_hint: str | None = ticket["address"]
    else:
        login_hint = clean_login_hint(request.query_params.get("login_hint"))
        if login_hint == "":
            return pages.refusal(request, lang, "bad_login_hint")
        if ctx.settings.connect_requires_ticket and not _reconnect_allowed(ctx, login_hint):
            log.info("connect_without_ticket_refused")
            return pages.refusal(request, lang, "ticket_required")
    if login_hint and _disconnected_for(ctx, login_hint, ticket_hash):
        # Told before the person signs in; the callback decides again in any case.
        return pages.refusal(request, lang, "mailbox_disconnected")
    try:
        flow = ctx.identity.start_sign_in(login_hint)
    except IdentityFailure as failure:
        return callback.failure_page(ctx, request, lang, failure.classification, login_hint)
    cookie, binding = browser_binding.bind(ctx.settings, request)
    with ctx.pool.connection() as conn:
        flows.save_flow(
            conn,
            state=flow["state"],
            kind="connect",
            flow=ctx.cipher.encrypt(json.dumps(flow)),
            login_hint=login_hint,
            lang=lang,
            ttl=ctx.settings.oauth_state_ttl,
            browser_binding=binding,
            ticket_hash=ticket_hash,
        )
    response = RedirectResponse(flow["auth_uri"], status_code=302)
    browser_binding.set_cookie(ctx.settings, response, cookie)
    return response


def _disconnected_for(ctx: AuthContext, address: str, ticket_hash: bytes | None) -> bool:
    """The mailbox was disconnected by an administrator and this link predates that."""
    with ctx.pool.connection() as conn:
        disconnection = mailboxes.disconnection(conn, address)
        ticket = tickets.find_ticket(conn, ticket_hash) if ticket_hash else None
    if disconnection is None:
        return False
    if ticket is None:
        return True
    return disconnection["at"] is not None and ticket["created_at"] <= disconnection["at"]


def _reconnect_allowed(ctx: AuthContext, login_hint: str | None) -> bool:
    """Without a ticket, only a mailbox waiting for its own owner (``needs_reauth``, the
    link in its ``reauth_needed`` event) may be signed into again: the callback then
    accepts only the account on record."""
    if login_hint is None:
        return False
    with ctx.pool.connection() as conn:
        return mailboxes.reconnectable(conn, login_hint)


_ADDRESS = re.compile(r"^[^\s@\x00-\x1f\x7f]{1,200}@[A-Za-z0-9.-]{1,253}$")
_TENANT = re.compile(r"^[A-Za-z0-9.-]{1,100}$")


def clean_login_hint(value: str | None) -> str | None:
    """None when absent; "" when present but not an address (refused by the caller)."""
    if value is None or not value.strip():
        return None
    value = value.strip().lower()
    return value if _ADDRESS.match(value) else ""


def admin_consent_url(settings: Settings, state: str, tenant: str = "organizations") -> str:
    query = urlencode(
        {
            "client_id": settings.client_id,
            "redirect_uri": settings.admin_consent_redirect_uri,
            "state": state,
            # IMAP.AccessAsApp is an Exchange Online application permission; application
            # permissions are requested with the resource's /.default
            # (docs/architecture.md#identity-admin-consent).
            "scope": "https://outlook.office365.com/.default",
        }
    )
    return f"{settings.authority_host}/{tenant}/v2.0/adminconsent?{query}"


def start_admin_consent(ctx: AuthContext, request: Request) -> Response:
    state = secrets.token_urlsafe(24)
    tenant = request.query_params.get("tenant") or "organizations"
    if not _TENANT.match(tenant):
        return JSONResponse({"error": "invalid tenant"}, status_code=400)
    cookie, binding = browser_binding.bind(ctx.settings, request)
    with ctx.pool.connection() as conn:
        flows.save_flow(
            conn,
            state=state,
            kind="admin_consent",
            flow=ctx.cipher.encrypt(json.dumps({"tenant": tenant})),
            login_hint=None,
            lang=pick_lang(request),
            ttl=ctx.settings.oauth_state_ttl,
            browser_binding=binding,
        )
    response = RedirectResponse(admin_consent_url(ctx.settings, state, tenant), status_code=302)
    browser_binding.set_cookie(ctx.settings, response, cookie)
    return response


# Label values come from fixed sets only: a stranger choosing methods or paths must not
# be able to create metric series (each one costs memory here and in Prometheus).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.monotonic()
        route = _route_template(request)
        method = request.method if request.method in _METHODS else "other"
        response = await call_next(request)
        metrics.HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        metrics.HTTP_DURATION.labels(route).observe(time.monotonic() - started)
        return response


def _route_template(request: Request) -> str:
    # Label by route template, never by the raw path (unbounded, may carry addresses). A
    # known path asked with another method (405) is still that route.
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match.name in ("FULL", "PARTIAL"):
            return str(getattr(route, "path", "other"))
    return "other"
