"""The operator's HTML status page (behind the admin credential).

Two ways in: ``Authorization: Bearer <admin token>`` (scripts, curl), or the login form,
which sets a cookie holding the login time and an HMAC of it keyed by the admin token,
never the token itself. The cookie lasts ``BANDEJA_STATUS_SESSION_SECONDS``: the browser
drops it then (Max-Age), and the server refuses an older one anyway (a copied cookie stops
working). Rotating the admin token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from common.settings import Settings
from services.auth.admin_api import (
    MAILBOX_STATES,
    SEARCH_PATTERN,
    TENANT_PATTERN,
    decode_cursor,
    encode_cursor,
)
from services.auth.admin_credential import admin_token_matches, bearer_token
from services.auth.context import AuthContext
from services.auth.messages import human_message
from services.auth.pages import pick_lang
from services.auth.store import listing
from services.auth.store import rules as rules_store

COOKIE = "bandeja_status"
STATES = MAILBOX_STATES
REFRESH_SECONDS = 5
PAGE_SIZE = 100  # rows per page: the summary counts every mailbox, the table one page
_MAX_FORM_BYTES = 4096
_SESSION_LABEL = b"bandeja-status-session"

_env = Environment(
    loader=PackageLoader("services.auth", "templates"), autoescape=select_autoescape()
)

TEXT: dict[str, dict[str, str]] = {
    "title": {"es": "Estado de los buzones", "en": "Mailbox status"},
    "login_title": {"es": "Acceso de operador", "en": "Operator sign-in"},
    "token_label": {"es": "Token de administrador", "en": "Admin token"},
    "sign_in": {"es": "Entrar", "en": "Sign in"},
    "bad_token": {"es": "Token incorrecto.", "en": "Wrong token."},
    "address": {"es": "Buzón", "en": "Mailbox"},
    "state": {"es": "Estado", "en": "State"},
    "last_fetch": {"es": "Última lectura correcta", "en": "Last successful fetch"},
    "last_error": {"es": "Último error", "en": "Last error"},
    "action": {"es": "Acción", "en": "Action"},
    "never": {"es": "nunca", "en": "never"},
    "reconnect": {"es": "Reconectar", "en": "Reconnect"},
    "admin_consent": {"es": "Consentimiento de administrador", "en": "Admin consent"},
    "empty": {"es": "No hay buzones conectados.", "en": "No mailboxes are connected."},
    "generated": {"es": "Actualizado", "en": "Updated"},
    "filter": {"es": "Filtrar", "en": "Filter"},
    "all_states": {"es": "todos los estados", "en": "all states"},
    "tenant": {"es": "Inquilino", "en": "Tenant"},
    "search": {"es": "Buscar dirección", "en": "Search address"},
    "next_page": {"es": "Página siguiente", "en": "Next page"},
    "no_match": {"es": "Ningún buzón coincide.", "en": "No mailbox matches."},
    "active": {"es": "activo", "en": "active"},
    "needs_reauth": {"es": "requiere reautorización", "en": "needs re-authorization"},
    "paused": {"es": "en pausa", "en": "paused"},
    "disconnected": {"es": "desconectado", "en": "disconnected"},
    "error": {"es": "error", "en": "error"},
    "rules": {"es": "Reglas", "en": "Rules"},
    "rules_summary": {
        "es": "{own} propias, {tenant} del inquilino; {skipped} omitidos en 24 h",
        "en": "{own} own, {tenant} tenant-wide; {skipped} skipped in 24 h",
    },
    "rules_none": {"es": "ninguna: se procesa todo", "en": "none: everything is processed"},
}


@dataclass(frozen=True)
class Row:
    address: str
    state: str
    state_label: str
    last_fetch_iso: str | None
    last_fetch_absolute: str | None
    last_fetch_relative: str
    last_error: str | None
    reason_message: str | None
    reason_code: str | None
    reconnect_url: str | None
    reconnect_label: str
    rules: str = ""


def render_status(ctx: AuthContext, request: Request) -> Response:
    lang = pick_lang(request)
    if not is_authorized(ctx.settings, request):
        return _login_form(request, lang, failed="authorization" in request.headers)
    wanted = _filter(request)
    after = decode_cursor(request.query_params.get("cursor", ""))
    with ctx.pool.connection() as conn:
        counted = listing.counts_by_state(conn)
        page = listing.page_of_mailboxes(conn, wanted, after or None, PAGE_SIZE)
        rules = rules_store.summaries(conn, [m["id"] for m in page.rows])
    now = datetime.now(UTC)
    counts = dict.fromkeys(STATES, 0) | counted  # a state this page does not know is shown too
    html = _env.get_template("status.html").render(
        **_common(lang),
        rows=[_row(ctx.settings, m, lang, now, rules.get(m["id"])) for m in page.rows],
        counts=counts,
        filtered=wanted != listing.MailboxFilter(),
        wanted=wanted,
        next_query=_next_query(request, page.last_address),
        refresh=REFRESH_SECONDS,
        generated_at=_absolute(now),
    )
    return HTMLResponse(html)  # headers: page_headers.py


def _filter(request: Request) -> listing.MailboxFilter:
    """The page's filters from its query string; a value it could not have offered is
    ignored (the page shows everything rather than an error)."""
    state = request.query_params.get("state")
    tenant = request.query_params.get("tenant", "").strip()
    search = request.query_params.get("q", "").strip()
    return listing.MailboxFilter(
        state=state if state in STATES else None,
        tenant_id=tenant if re.match(TENANT_PATTERN, tenant) else None,
        search=search if re.match(SEARCH_PATTERN, search) else None,
    )


def _next_query(request: Request, last_address: str | None) -> str | None:
    if last_address is None:
        return None
    kept = {k: v for k, v in request.query_params.items() if k in ("state", "tenant", "q", "lang")}
    return urlencode(kept | {"cursor": encode_cursor(last_address)})


async def login(ctx: AuthContext, request: Request) -> Response:
    """POST /status/login: the form's token → the session cookie, or the form again (401)."""
    lang = pick_lang(request)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return Response(status_code=413)
    presented = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
    if not admin_token_matches(ctx.settings, presented):
        return _login_form(request, lang, failed=True)
    response = RedirectResponse(_keep_lang("/status", request), status_code=303)
    response.set_cookie(
        COOKIE,
        session_value(ctx.settings, int(time.time())),
        max_age=ctx.settings.status_session_seconds,
        path="/status",
        httponly=True,
        samesite="strict",
        secure=_is_https(ctx.settings, request),
    )
    return response


def session_value(settings: Settings, issued_at: int) -> str:
    key = settings.admin_token.get_secret_value().encode()
    signed = _SESSION_LABEL + b"." + str(issued_at).encode()
    return f"{issued_at}.{hmac.new(key, signed, hashlib.sha256).hexdigest()}"


def _valid_session(settings: Settings, cookie: str) -> bool:
    issued, _, _ = cookie.partition(".")
    if not issued.isascii() or not issued.isdigit() or len(issued) > 12:
        return False
    expected = session_value(settings, int(issued))
    if not hmac.compare_digest(cookie.encode(), expected.encode()):
        return False
    age = time.time() - int(issued)
    return -60 <= age <= settings.status_session_seconds  # a minute of clock skew


def is_authorized(settings: Settings, request: Request) -> bool:
    """The admin token as a Bearer header, or a live session cookie from the login form."""
    presented = bearer_token(request)
    if presented is not None:
        return admin_token_matches(settings, presented)
    if not settings.admin_token.get_secret_value():
        return False  # no session is signed with an empty key
    return _valid_session(settings, request.cookies.get(COOKIE, ""))


def _login_form(request: Request, lang: str, *, failed: bool) -> Response:
    html = _env.get_template("status.html").render(
        **_common(lang),
        login=True,
        failed=failed,
        action=_keep_lang("/status/login", request),
    )
    # RFC 9110 §11.6.1: a 401 names a scheme; Bearer keeps browsers from prompting.
    return HTMLResponse(html, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _keep_lang(path: str, request: Request) -> str:
    asked = request.query_params.get("lang")
    return f"{path}?{urlencode({'lang': asked})}" if asked in ("es", "en") else path


def _common(lang: str) -> dict[str, Any]:
    other = "en" if lang == "es" else "es"
    return {
        "lang": lang,
        "t": {key: value[lang] for key, value in TEXT.items()},
        "other_lang_query": urlencode({"lang": other}),
        "other_lang_label": "English" if other == "en" else "Español",
    }


def _row(
    settings: Settings,
    mailbox: dict[str, Any],
    lang: str,
    now: datetime,
    rules: rules_store.RulesSummary | None = None,
) -> Row:
    state = str(mailbox["state"])
    reason = mailbox["state_reason"] or {}
    fetched: datetime | None = mailbox["last_fetch_at"]
    reconnect_url, reconnect_label = _reconnect(settings, mailbox, lang)
    messages = (
        human_message(str(reason.get("error")), str(reason.get("class")))
        if state == "needs_reauth" and reason
        else {}
    )
    return Row(
        address=mailbox["address"],
        state=state,
        state_label=TEXT[state][lang] if state in TEXT else state,
        last_fetch_iso=fetched.isoformat() if fetched else None,
        last_fetch_absolute=_absolute(fetched) if fetched else None,
        last_fetch_relative=_relative(fetched, now, lang) if fetched else TEXT["never"][lang],
        # needs_reauth records the English reason as last_error: shown once, translated.
        last_error=None if mailbox["last_error"] in messages.values() else mailbox["last_error"],
        reason_message=messages.get(lang),
        reason_code=f"AADSTS{reason['aadsts']}" if reason.get("aadsts") else reason.get("error"),
        reconnect_url=reconnect_url,
        reconnect_label=reconnect_label,
        rules=_rules_text(rules, lang),
    )


def _rules_text(rules: rules_store.RulesSummary | None, lang: str) -> str:
    if rules is None or not (rules.own_rules or rules.tenant_rules or rules.skipped_last_day):
        return TEXT["rules_none"][lang]
    return TEXT["rules_summary"][lang].format(
        own=rules.own_rules, tenant=rules.tenant_rules, skipped=rules.skipped_last_day
    )


def _reconnect(settings: Settings, mailbox: dict[str, Any], lang: str) -> tuple[str | None, str]:
    if mailbox["state"] not in ("needs_reauth", "disconnected"):
        return None, ""
    if mailbox["auth_kind"] == "app_only":
        # An app-only mailbox has no user to sign in: its tenant's admin consents again.
        query = urlencode({"tenant": mailbox["tenant_id"]})
        return f"{settings.public_url}/admin-consent?{query}", TEXT["admin_consent"][lang]
    if mailbox["state"] == "disconnected":
        return None, ""  # an administrator's disconnection is undone only by a new ERP link
    hint = quote(str(mailbox["address"]), safe="@")
    return f"{settings.public_url}/connect?login_hint={hint}", TEXT["reconnect"][lang]


def _absolute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _relative(moment: datetime, now: datetime, lang: str) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size or size == 1:
            amount = f"{seconds // size} {unit}"
            return f"hace {amount}" if lang == "es" else f"{amount} ago"
    raise AssertionError("unreachable")


def _is_https(settings: Settings, request: Request) -> bool:
    return settings.public_url.startswith("https://") or request.url.scheme == "https"
