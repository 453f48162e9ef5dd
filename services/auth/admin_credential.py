"""The one check of the admin credential (``BANDEJA_ADMIN_TOKEN``), for the admin API and
the status page alike. An empty configured token admits nobody."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.settings import Settings


def admin_token_matches(settings: Settings, presented: str) -> bool:
    expected = settings.admin_token.get_secret_value()
    # Constant time: the comparison must not tell a guesser how much of it was right.
    return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None for any other header."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return presented if scheme.lower() == "bearer" else None


def require_admin(settings: Settings, request: Request) -> Response | None:
    """None when the request carries the admin token; else the 401 to answer with."""
    presented = bearer_token(request)
    if presented is not None and admin_token_matches(settings, presented):
        return None
    # RFC 6750 §3: the challenge names the scheme.
    return JSONResponse(
        {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )
