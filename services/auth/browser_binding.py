"""Bind a sign-in flow to the browser that started it (login CSRF defence).

``/connect`` sets a random cookie and the flow row keeps its SHA-256; the callback is
accepted only with that cookie, so a callback URL (with someone else's code) opened in
another browser connects nothing
(https://datatracker.ietf.org/doc/html/rfc9700#section-4.7). HttpOnly and SameSite=Lax
(sent on the top-level GET redirect back from Microsoft); Secure with the ``__Host-``
prefix when the public URL is https, so no sibling subdomain can plant it
(https://datatracker.ietf.org/doc/html/draft-ietf-httpbis-rfc6265bis#name-the-__host-prefix).
"""

from __future__ import annotations

import hashlib
import re
import secrets

from starlette.requests import Request
from starlette.responses import Response

from common.settings import Settings

_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def cookie_name(settings: Settings) -> str:
    return "__Host-bandeja_flow" if _https(settings) else "bandeja_flow"


def presented(settings: Settings, request: Request) -> bytes | None:
    """The SHA-256 of this browser's flow cookie, or None without a well-formed one."""
    value = request.cookies.get(cookie_name(settings), "")
    return _digest(value) if _VALUE.match(value) else None


def bind(settings: Settings, request: Request) -> tuple[str, bytes]:
    """The cookie value to set and the digest to keep with the flow. A browser that already
    holds one keeps it, so two sign-ins started in two tabs both finish."""
    value = request.cookies.get(cookie_name(settings), "")
    if not _VALUE.match(value):
        value = secrets.token_urlsafe(32)
    return value, _digest(value)


def set_cookie(settings: Settings, response: Response, value: str) -> None:
    response.set_cookie(
        cookie_name(settings),
        value,
        max_age=int(settings.oauth_state_ttl),
        path="/",
        secure=_https(settings),
        httponly=True,
        samesite="lax",
    )


def _https(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()
