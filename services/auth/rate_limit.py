"""Per-address rate limit on the public routes: strangers cannot make us write flow rows,
call the identity platform or try admin tokens faster than ``BANDEJA_PUBLIC_RATE_LIMIT``.

The counting is the `limits` library's moving window in this process's memory: each auth
replica counts on its own, so the effective limit is the setting times the replicas. The
ingress controller limits again in front (deploy/k8s/base/ingress-auth.yaml). The client
address is the peer's, or the one a trusted proxy (``BANDEJA_TRUSTED_PROXIES``) put in
X-Forwarded-For; uvicorn resolves that before this middleware runs.
"""

from __future__ import annotations

import ipaddress
import math
import time

import structlog
from limits import RateLimitItem
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

PUBLIC_PATHS = frozenset(
    {"/connect", "/oauth/callback", "/admin-consent", "/admin-consent/callback", "/status/login"}
)
_NAMESPACE = "public"


def client_key(host: str | None) -> str:
    """One key per IPv4 address and per IPv6 /64 (one customer line or host gets a whole
    /64, so counting single IPv6 addresses would let one client take 2^64 keys)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


class PublicRateLimit:
    def __init__(self, app: ASGIApp, limits: list[RateLimitItem]) -> None:
        self._app = app
        self._limits = limits
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in PUBLIC_PATHS:
            await self._app(scope, receive, send)
            return
        key = client_key((scope.get("client") or (None,))[0])
        exceeded = [item for item in self._limits if not self._limiter.hit(item, _NAMESPACE, key)]
        if not exceeded:
            await self._app(scope, receive, send)
            return
        stats = [self._limiter.get_window_stats(item, _NAMESPACE, key) for item in exceeded]
        reset_at = max(window.reset_time for window in stats)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        log.info("public_rate_limited", path=scope["path"], retry_after=retry_after)
        response = PlainTextResponse(
            "Too many requests: try again later.\n",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)
