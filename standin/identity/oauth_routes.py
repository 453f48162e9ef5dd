"""Public endpoints: discovery, /authorize, /token, admin consent, JWKS, introspection."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from standin.identity import grants, pages
from standin.identity.errors import OAuthError, aadsts_text
from standin.identity.state import CODE_LIFETIME, AuthCode, PendingAuthorization, State
from standin.identity.tokens import Signer

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _state(request: Request) -> State:
    return request.app.state.directory  # type: ignore[no-any-return]


def _signer(request: Request) -> Signer:
    return request.app.state.signer  # type: ignore[no-any-return]


def _base(request: Request) -> str:
    return request.app.state.base_url  # type: ignore[no-any-return]


def _redirect(redirect_uri: str, params: dict[str, str], mode: str = "query") -> Response:
    if mode == "form_post":
        return HTMLResponse(pages.form_post(redirect_uri, params))
    sep = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)


def _error_page(code: int, status: int = 400, **params: str) -> HTMLResponse:
    return HTMLResponse(pages.error(aadsts_text(code, **params)), status_code=status)


async def discovery(request: Request) -> JSONResponse:
    tenant = request.path_params["tenant"]
    base = _base(request)
    issuer_tenant = tenant if grants.GUID.match(tenant) else "{tenantid}"
    return JSONResponse({
        "issuer": f"{base}/{issuer_tenant}/v2.0",
        "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
        "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
        "introspection_endpoint": f"{base}/introspect",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "name", "tid", "oid",
                             "preferred_username"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    })


async def keys(request: Request) -> JSONResponse:
    return JSONResponse(_signer(request).jwks())


async def authorize(request: Request) -> Response:
    state, q = _state(request), request.query_params
    tenant = request.path_params["tenant"]
    if grants.GUID.match(tenant) and state.find_tenant(tenant) is None:
        return _error_page(90002, tenant=tenant)
    client = state.clients.get(q.get("client_id", ""))
    if client is None:
        return _error_page(700016, client_id=q.get("client_id", ""), tenant=tenant)
    redirect_uri = q.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        return _error_page(50011, redirect_uri=redirect_uri, client_id=client.client_id)
    mode = q.get("response_mode", "query")
    echo = {"state": q["state"]} if "state" in q else {}
    if q.get("response_type") != "code":
        return _redirect(redirect_uri, {"error": "unsupported_response_type",
                                        "error_description": "AADSTS70005: response_type "
                                        "must be 'code'.", **echo}, mode)
    if q.get("prompt") == "none":
        return _redirect(redirect_uri, {**OAuthError("login_required", 50058)
                                        .redirect_params(), **echo}, mode)
    scopes = q.get("scope", "").split()
    if not scopes:
        return _redirect(redirect_uri, {**OAuthError("invalid_request", 70011)
                                        .redirect_params(), **echo}, mode)
    flow = state.new_pending(PendingAuthorization(
        tenant, client.client_id, redirect_uri, scopes, q.get("state"), q.get("nonce"),
        q.get("code_challenge"), q.get("code_challenge_method", "plain"),
        q.get("login_hint", ""), mode))
    return HTMLResponse(pages.sign_in(f"/{tenant}/oauth2/v2.0/authorize", flow,
                                      client.client_id, scopes, login_hint=q.get("login_hint", "")))


async def authorize_submit(request: Request) -> Response:
    state = _state(request)
    form = await request.form()
    pending = state.pending.get(str(form.get("flow", "")))
    if pending is None:
        return _error_page(9002313)
    echo = {"state": pending.state} if pending.state is not None else {}
    if form.get("action") != "accept":
        state.pending.pop(str(form["flow"]))
        params = {"error": "access_denied", "error_subcode": "cancel",
                  "error_description": aadsts_text(65004), **echo}
        return _redirect(pending.redirect_uri, params, pending.response_mode)
    address = str(form.get("username", "")).strip().lower()
    user = state.users.get(address)
    tenant = state.find_tenant(pending.tenant) if grants.GUID.match(pending.tenant) else None
    failure = None
    if user is None:
        failure = aadsts_text(50034)
    elif tenant is not None and user.tenant_id != tenant.id:
        failure = aadsts_text(50020)
    if failure or user is None:
        page = pages.sign_in(f"/{pending.tenant}/oauth2/v2.0/authorize", str(form["flow"]),
                             pending.client_id, pending.scopes, login_hint=address,
                             error=failure)
        return HTMLResponse(page, status_code=200)
    state.pending.pop(str(form["flow"]))
    error = None
    if user.blocked_by_ca:
        error = OAuthError("access_denied", 53003)
    elif state.needs_admin_consent(user, pending.client_id):
        error = OAuthError("consent_required", 90094)
    if error is not None:
        return _redirect(pending.redirect_uri, {**error.redirect_params(), **echo},
                         pending.response_mode)
    code = state.new_code(AuthCode(
        pending.client_id, pending.redirect_uri, pending.scopes, pending.nonce,
        pending.code_challenge, pending.code_challenge_method, user.address,
        time.time() + CODE_LIFETIME))
    return _redirect(pending.redirect_uri, {"code": code, **echo,
                                            "session_state": user.oid}, pending.response_mode)


def _basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:]).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, secret = raw.partition(":")
    return client_id, secret


def _injected(request: Request) -> Response | None:
    failure = _state(request).take_failure()
    if failure is None:
        return None
    _state(request).grant_counts["injected_failure"] += 1
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
    if failure.status == 429:
        body = OAuthError("temporarily_unavailable", 90055).body()
        return JSONResponse(body, status_code=429, headers=headers)
    return PlainTextResponse("Service Unavailable", status_code=failure.status, headers=headers)


async def token(request: Request) -> Response:
    injected = _injected(request)
    if injected is not None:
        return injected
    form = {k: str(v) for k, v in (await request.form()).items()}
    ctx = grants.Context(_state(request), _signer(request), _base(request),
                         request.path_params["tenant"])
    try:
        body = grants.exchange(ctx, form, _basic_auth(request))
    except OAuthError as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers=NO_STORE)
    return JSONResponse(body, headers=NO_STORE)


async def adminconsent(request: Request) -> Response:
    state, q = _state(request), request.query_params
    tenant = request.path_params["tenant"]
    client = state.clients.get(q.get("client_id", ""))
    if client is None:
        return _error_page(700016, client_id=q.get("client_id", ""), tenant=tenant)
    if q.get("redirect_uri", "") not in client.redirect_uris:
        return _error_page(50011, redirect_uri=q.get("redirect_uri", ""),
                           client_id=client.client_id)
    flow = state.new_pending(PendingAuthorization(
        tenant, client.client_id, q["redirect_uri"], q.get("scope", "").split(),
        q.get("state"), None, None, "plain", "", "query"))
    return HTMLResponse(pages.admin_consent(f"/{tenant}/v2.0/adminconsent", flow,
                                            client.client_id, q.get("scope", "")))


async def adminconsent_submit(request: Request) -> Response:
    state = _state(request)
    form = await request.form()
    pending = state.pending.pop(str(form.get("flow", "")), None)
    if pending is None:
        return _error_page(9002313)
    echo = {"state": pending.state} if pending.state is not None else {}
    params: dict[str, str]
    if form.get("action") != "accept":
        params = {"error": "access_denied", "error_subcode": "cancel",
                  "error_description": aadsts_text(65004), "admin_consent": "True", **echo}
        return _redirect(pending.redirect_uri, params)
    user = state.users.get(str(form.get("username", "")).strip().lower())
    if user is None:
        return _error_page(50034)
    tenant = state.tenants[user.tenant_id]
    if grants.GUID.match(pending.tenant) and pending.tenant.lower() != tenant.id:
        return _error_page(50020)
    if not user.is_admin:
        params = {"error": "consent_required", "error_description": aadsts_text(90094),
                  "admin_consent": "True", **echo}
        return _redirect(pending.redirect_uri, params)
    tenant.consented_clients.add(pending.client_id)
    params = {"admin_consent": "True", "tenant": tenant.id,
              "scope": " ".join(pending.scopes), **echo}
    return _redirect(pending.redirect_uri, params)


async def introspect(request: Request) -> JSONResponse:
    """RFC 7662-style introspection, shaped for Dovecot 2.3's oauth2 passdb.

    Dovecot (`introspection_mode = post`) sends `token=…&client_id=…&client_secret=…`
    form-encoded and nothing naming the login user, so an app-only token cannot be answered
    with the mailbox being opened. Two attributes therefore serve two passdbs (dovecot.py):
    `username` (compared with %Lu) for delegated tokens and `tenant_user` (compared with %Ld,
    its domain part) for app-only tokens. Dovecot checks the username *before* `active`
    and treats a missing one as a temporary failure, so every answer carries both, with
    non-matching placeholders where they do not apply.
    """
    state = _state(request)
    form = await request.form()
    value = str(form.get("token", ""))
    header = request.headers.get("authorization", "")
    if not value and header.lower().startswith("bearer "):
        value = header[7:].strip()
    record = state.access_tokens.get(value)
    if record is None or not state.access_token_active(record):
        state.introspections["inactive"] += 1
        return JSONResponse({"active": False, "username": _NO_MATCH, "tenant_user": _NO_MATCH})
    state.introspections["active"] += 1
    body: dict[str, Any] = {"active": True, "client_id": record.client_id,
                            "tid": record.tenant_id, "exp": int(record.expires_at),
                            "scope": " ".join(record.scopes), "token_type": "Bearer"}
    if record.address is None:
        body["username"] = _NO_MATCH
        body["tenant_user"] = "app@" + state.tenants[record.tenant_id].domain
    else:
        body["username"] = record.address
        body["tenant_user"] = _NO_MATCH
        body["oid"] = state.users[record.address].oid
    return JSONResponse(body)


_NO_MATCH = "nobody@standin.invalid"

routes = [
    Route("/{tenant}/v2.0/.well-known/openid-configuration", discovery),
    Route("/{tenant}/discovery/v2.0/keys", keys),
    Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET"]),
    Route("/{tenant}/oauth2/v2.0/authorize", authorize_submit, methods=["POST"]),
    Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
    Route("/{tenant}/v2.0/adminconsent", adminconsent, methods=["GET"]),
    Route("/{tenant}/v2.0/adminconsent", adminconsent_submit, methods=["POST"]),
    Route("/introspect", introspect, methods=["POST", "GET"]),
]
