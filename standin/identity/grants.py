"""The token endpoint's grants: authorization_code, refresh_token, client_credentials.

Each grant takes the parsed form and returns the success JSON or raises `OAuthError`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from standin.identity import tokens
from standin.identity.errors import (
    OAuthError,
    expired_client_secret,
    invalid_client_secret,
    missing_parameter,
    unknown_client,
)
from standin.identity.state import AccessToken, Client, State, User

APP_SCOPE = "https://outlook.office365.com/.default"
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass
class Context:
    state: State
    signer: tokens.Signer
    base_url: str
    tenant_ref: str


def _stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")


def authenticate_client(ctx: Context, form: Mapping[str, str], basic: tuple[str, str] | None,
                        ) -> Client:
    client_id, secret = basic if basic else (form.get("client_id", ""), form.get("client_secret"))
    if not client_id:
        raise missing_parameter("client_id")
    client = ctx.state.clients.get(client_id)
    if client is None:
        raise unknown_client(client_id, ctx.tenant_ref)
    if secret is None:
        raise OAuthError("invalid_client", 7000218, status=401)
    if not hmac.compare_digest(secret, client.secret):
        raise invalid_client_secret(client_id)
    if client.secret_expired:
        raise expired_client_secret(client_id)
    return client


def _resource_scopes(scopes: list[str]) -> list[str]:
    return [s for s in scopes if s not in OIDC_SCOPES]


def _check_pkce(verifier: str | None, challenge: str | None, method: str) -> None:
    if challenge is None:
        return
    if not verifier:
        raise OAuthError("invalid_grant", 501481)
    if method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        computed = verifier
    if not hmac.compare_digest(computed, challenge):
        raise OAuthError("invalid_grant", 501481)


def user_tokens(ctx: Context, client: Client, user: User, scopes: list[str], *,
                nonce: str | None, with_refresh: bool) -> dict[str, Any]:
    state = ctx.state
    resource = _resource_scopes(scopes)
    lifetime = state.access_lifetime
    claims = tokens.access_token_claims(
        base_url=ctx.base_url, client_id=client.client_id, tenant_id=user.tenant_id,
        lifetime=lifetime, scopes=resource, oid=user.oid, address=user.address)
    access = ctx.signer.sign(claims)
    state.register_access_token(access, AccessToken(
        client.client_id, user.tenant_id, user.address, resource, state.next_seq(),
        time.time() + lifetime))
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join(resource),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    }
    if with_refresh and "offline_access" in scopes:
        body["refresh_token"] = state.new_refresh_token(client.client_id, user.address, scopes)
    if "openid" in scopes:
        id_claims = tokens.id_token_claims(
            base_url=ctx.base_url, client_id=client.client_id, tenant_id=user.tenant_id,
            oid=user.oid, address=user.address, name=user.name, nonce=nonce)
        if state.id_token_fault == "nonce":
            id_claims["nonce"] = "not-the-nonce-of-this-sign-in"
        elif state.id_token_fault == "issuer":
            id_claims["iss"] = f"https://issuer.invalid/{user.tenant_id}/v2.0"
        body["id_token"] = ctx.signer.sign(id_claims)
    body["client_info"] = tokens.client_info(user.oid, user.tenant_id)
    return body


def _check_user(ctx: Context, user: User, client_id: str) -> None:
    """Blocks that apply to a signed-in user whatever the grant."""
    if user.blocked_by_ca:
        raise OAuthError("invalid_grant", 53003, suberror="message_only")
    if ctx.state.needs_admin_consent(user, client_id):
        raise OAuthError("invalid_grant", 65001, suberror="consent_required")


def authorization_code(ctx: Context, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
    value = form.get("code")
    if not value:
        raise missing_parameter("code")
    code = ctx.state.codes.get(value)
    if code is None or code.client_id != client.client_id or code.expires_at < time.time():
        raise OAuthError("invalid_grant", 70000)
    if code.redeemed:
        raise OAuthError("invalid_grant", 54005)
    if form.get("redirect_uri") != code.redirect_uri:
        raise OAuthError("invalid_grant", 50011, params={
            "redirect_uri": form.get("redirect_uri", ""), "client_id": client.client_id})
    _check_pkce(form.get("code_verifier"), code.code_challenge, code.code_challenge_method)
    code.redeemed = True
    user = ctx.state.users[code.address]
    ctx.state.count_user(user.address, "authorization_code")
    return user_tokens(ctx, client, user, code.scopes, nonce=code.nonce, with_refresh=True)


def refresh_token(ctx: Context, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
    value = form.get("refresh_token")
    if not value:
        raise missing_parameter("refresh_token")
    record = ctx.state.refresh_tokens.get(value)
    if record is None:
        raise OAuthError("invalid_grant", 9002313)
    if record.client_id != client.client_id:
        raise OAuthError("invalid_grant", 70000)
    user = ctx.state.users.get(record.address)
    ctx.state.count_user(record.address, "refresh_token")
    if user is None:
        raise OAuthError("invalid_grant", 50034)
    issued = _stamp(record.issued_at)
    if record.seq <= user.revoked_before:
        raise OAuthError("invalid_grant", 50173, suberror="bad_token",
                         params={"issued": issued, "valid_from": _stamp(time.time())})
    if record.seq <= user.inactive_before:
        raise OAuthError("invalid_grant", 700082, suberror="bad_token", params={"issued": issued})
    if record.seq <= user.mfa_before:
        raise OAuthError("interaction_required", 50076, suberror="basic_action")
    _check_user(ctx, user, client.client_id)
    requested = form.get("scope", "").split() or record.scopes
    scopes = [*requested, *([] if "offline_access" in requested else ["offline_access"])]
    return user_tokens(ctx, client, user, scopes, nonce=None, with_refresh=True)


def client_credentials(ctx: Context, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
    scope = form.get("scope", "")
    if scope.split() != [APP_SCOPE]:
        raise OAuthError("invalid_scope", 1002012, params={"scope": scope})
    if not GUID.match(ctx.tenant_ref):
        tenant = ctx.state.find_tenant(ctx.tenant_ref)
        if tenant is None:
            raise OAuthError("invalid_request", 9001023)
    else:
        tenant = ctx.state.tenants.get(ctx.tenant_ref.lower())
        if tenant is None:
            raise OAuthError("invalid_request", 90002, params={"tenant": ctx.tenant_ref})
    if client.client_id not in tenant.consented_clients:
        raise unknown_client(client.client_id, tenant.id)
    lifetime = ctx.state.access_lifetime
    claims = tokens.access_token_claims(
        base_url=ctx.base_url, client_id=client.client_id, tenant_id=tenant.id,
        lifetime=lifetime, scopes=[APP_SCOPE])
    access = ctx.signer.sign(claims)
    ctx.state.register_access_token(access, AccessToken(
        client.client_id, tenant.id, None, [APP_SCOPE], ctx.state.next_seq(),
        time.time() + lifetime))
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
            "access_token": access}


GRANTS = {
    "authorization_code": authorization_code,
    "refresh_token": refresh_token,
    "client_credentials": client_credentials,
}


def exchange(ctx: Context, form: Mapping[str, str], basic: tuple[str, str] | None,
             ) -> dict[str, Any]:
    grant_type = form.get("grant_type", "")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise OAuthError("unsupported_grant_type", 70003, params={"grant_type": grant_type})
    ctx.state.grant_counts[grant_type] += 1
    client = authenticate_client(ctx, form, basic)
    return grant(ctx, client, form)
