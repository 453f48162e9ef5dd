"""The `/_control/` JSON API that tests use to shape the directory and provoke failures."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from standin.identity.state import Failure, State, User

Handler = Callable[[State, dict[str, Any], dict[str, str]], Any]


def _json_route(path: str, handler: Handler, method: str = "POST") -> Route:
    async def endpoint(request: Request) -> JSONResponse:
        body = await request.json() if method in {"POST", "PUT"} and await request.body() else {}
        try:
            result = handler(request.app.state.directory, body, dict(request.path_params))
        except KeyError as exc:
            return JSONResponse({"error": f"not found: {exc}"}, status_code=404)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(result if result is not None else {"ok": True})

    return Route(path, endpoint, methods=[method])


def _tenant_json(tenant: Any) -> dict[str, Any]:
    data = asdict(tenant)
    data["consented_clients"] = sorted(tenant.consented_clients)
    return data


def create_tenant(state: State, body: dict[str, Any], _: dict[str, str]) -> dict[str, Any]:
    tenant = state.add_tenant(body["domain"], body.get("id"),
                              bool(body.get("user_consent_allowed", True)))
    return _tenant_json(tenant)


def admin_consent(state: State, body: dict[str, Any], p: dict[str, str]) -> dict[str, Any]:
    tenant = state.tenants[p["tenant_id"]]
    if body.get("granted", True):
        tenant.consented_clients.add(body["client_id"])
    else:
        tenant.consented_clients.discard(body["client_id"])
    return _tenant_json(tenant)


def create_user(state: State, body: dict[str, Any], _: dict[str, str]) -> dict[str, Any]:
    user = state.add_user(body["address"], body.get("tenant"), oid=body.get("oid"),
                          name=body.get("name"), is_admin=bool(body.get("is_admin", False)),
                          blocked_by_ca=bool(body.get("blocked_by_ca", False)))
    return asdict(user)


def _user(state: State, p: dict[str, str]) -> User:
    return state.users[p["address"].lower()]


def update_user(state: State, body: dict[str, Any], p: dict[str, str]) -> dict[str, Any]:
    user = _user(state, p)
    for flag in ("blocked_by_ca", "is_admin"):
        if flag in body:
            setattr(user, flag, bool(body[flag]))
    return asdict(user)


def _mark(attribute: str) -> Handler:
    def handler(state: State, _: dict[str, Any], p: dict[str, str]) -> dict[str, Any]:
        user = _user(state, p)
        setattr(user, attribute, state.next_seq())
        return asdict(user)

    return handler


def clear_mfa(state: State, _: dict[str, Any], p: dict[str, str]) -> dict[str, Any]:
    user = _user(state, p)
    user.mfa_before = 0
    return asdict(user)


def create_client(state: State, body: dict[str, Any], _: dict[str, str]) -> dict[str, Any]:
    return asdict(state.add_client(body.get("client_id"), body.get("secret"),
                                   body.get("redirect_uris")))


def rotate_secret(state: State, body: dict[str, Any], p: dict[str, str]) -> dict[str, Any]:
    client = state.clients[p["client_id"]]
    client.secret = body.get("secret") or secrets.token_urlsafe(24)
    client.secret_expired = False
    return asdict(client)


def expire_secret(state: State, body: dict[str, Any], p: dict[str, str]) -> dict[str, Any]:
    client = state.clients[p["client_id"]]
    client.secret_expired = bool(body.get("expired", True))
    return asdict(client)


def expire_access_tokens(state: State, body: dict[str, Any], _: dict[str, str]) -> None:
    address = body.get("address")
    if address:
        state.users[address.lower()].access_expired_before = state.next_seq()
    else:
        state.access_expired_before = state.next_seq()


def settings(state: State, body: dict[str, Any], _: dict[str, str]) -> dict[str, Any]:
    if "access_token_lifetime" in body:
        state.access_lifetime = int(body["access_token_lifetime"])
    if "id_token_fault" in body:
        if body["id_token_fault"] not in (None, "nonce", "issuer"):
            raise ValueError("id_token_fault must be null, 'nonce' or 'issuer'")
        state.id_token_fault = body["id_token_fault"]
    return {"access_token_lifetime": state.access_lifetime,
            "id_token_fault": state.id_token_fault}


def inject_failure(state: State, body: dict[str, Any], _: dict[str, str]) -> None:
    status = int(body["status"])
    if status < 400:
        raise ValueError("status must be an HTTP error status")
    retry_after = body.get("retry_after")
    state.failures.append(Failure(status, int(body.get("count", 1)),
                                  int(retry_after) if retry_after is not None else None))


def clear_failures(state: State, _: dict[str, Any], __: dict[str, str]) -> None:
    state.failures.clear()


def stats(state: State, _: dict[str, Any], __: dict[str, str]) -> dict[str, Any]:
    return state.stats()


def reset_stats(state: State, _: dict[str, Any], __: dict[str, str]) -> None:
    state.grant_counts.clear()
    state.user_counts.clear()
    state.introspections.clear()


def reset(state: State, _: dict[str, Any], __: dict[str, str]) -> None:
    state.reset()


def describe(state: State, _: dict[str, Any], __: dict[str, str]) -> dict[str, Any]:
    return {
        "tenants": [_tenant_json(t) for t in state.tenants.values()],
        "users": [asdict(u) for u in state.users.values()],
        "clients": [asdict(c) for c in state.clients.values()],
        "access_token_lifetime": state.access_lifetime,
    }


_C = "/_control"
routes = [
    _json_route(f"{_C}/tenants", create_tenant),
    _json_route(f"{_C}/tenants/{{tenant_id}}/admin-consent", admin_consent),
    _json_route(f"{_C}/users", create_user),
    _json_route(f"{_C}/users/{{address}}", update_user, "PUT"),
    _json_route(f"{_C}/users/{{address}}/revoke", _mark("revoked_before")),
    _json_route(f"{_C}/users/{{address}}/expire-refresh-tokens", _mark("inactive_before")),
    _json_route(f"{_C}/users/{{address}}/require-mfa", _mark("mfa_before")),
    _json_route(f"{_C}/users/{{address}}/clear-mfa", clear_mfa),
    _json_route(f"{_C}/clients", create_client),
    _json_route(f"{_C}/clients/{{client_id}}/rotate-secret", rotate_secret),
    _json_route(f"{_C}/clients/{{client_id}}/expire-secret", expire_secret),
    _json_route(f"{_C}/access-tokens/expire", expire_access_tokens),
    _json_route(f"{_C}/settings", settings, "PUT"),
    _json_route(f"{_C}/failures", inject_failure),
    _json_route(f"{_C}/failures/clear", clear_failures),
    _json_route(f"{_C}/stats", stats, "GET"),
    _json_route(f"{_C}/stats/reset", reset_stats),
    _json_route(f"{_C}/reset", reset),
    _json_route(f"{_C}/state", describe, "GET"),
]
