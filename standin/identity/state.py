"""In-memory directory: tenants, users, app registrations, codes, tokens, flags and counters.

Invalidation uses a global sequence number: every issued token records `seq`, and each user
holds thresholds (`revoked_before` …). A token issued at or before a threshold is hit by it,
while one issued afterwards (a fresh sign-in) is not — like Entra's TokensValidFrom.
"""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

CODE_LIFETIME = 600


@dataclass
class Tenant:
    id: str
    domain: str
    user_consent_allowed: bool = True
    consented_clients: set[str] = field(default_factory=set)


@dataclass
class User:
    address: str
    tenant_id: str
    oid: str
    name: str
    is_admin: bool = False
    blocked_by_ca: bool = False
    revoked_before: int = 0
    inactive_before: int = 0
    mfa_before: int = 0
    access_expired_before: int = 0


@dataclass
class Client:
    client_id: str
    secret: str
    redirect_uris: list[str]
    secret_expired: bool = False


@dataclass
class PendingAuthorization:
    """An /authorize request waiting for the sign-in page to be submitted."""

    tenant: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    login_hint: str
    response_mode: str


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    scopes: list[str]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    address: str
    expires_at: float
    redeemed: bool = False


@dataclass
class RefreshToken:
    client_id: str
    address: str
    scopes: list[str]
    seq: int
    issued_at: float


@dataclass
class AccessToken:
    client_id: str
    tenant_id: str
    address: str | None  # None for app-only (client credentials) tokens
    scopes: list[str]
    seq: int
    expires_at: float


@dataclass
class Failure:
    status: int
    count: int
    retry_after: int | None = None


class State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._seq = itertools.count(1)
        self.tenants: dict[str, Tenant] = {}
        self.users: dict[str, User] = {}
        self.clients: dict[str, Client] = {}
        self.pending: dict[str, PendingAuthorization] = {}
        self.pending_admin: dict[str, dict[str, str]] = {}
        self.codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.access_lifetime = 3600
        # "nonce" or "issuer": id_tokens issued from now on are wrong in that claim, the way
        # a replayed or foreign token would be (the client must refuse them).
        self.id_token_fault: str | None = None
        self.access_expired_before = 0
        self.failures: list[Failure] = []
        self.grant_counts: Counter[str] = Counter()
        self.user_counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.introspections: Counter[str] = Counter()

    def next_seq(self) -> int:
        return next(self._seq)

    # --- directory -------------------------------------------------------------------
    def add_tenant(self, domain: str, tenant_id: str | None = None,
                   user_consent_allowed: bool = True) -> Tenant:
        tenant = Tenant(tenant_id or str(uuid.uuid4()), domain.lower(), user_consent_allowed)
        self.tenants[tenant.id] = tenant
        return tenant

    def find_tenant(self, ref: str) -> Tenant | None:
        """Resolve a tenant path segment given as a GUID or a verified domain."""
        ref = ref.lower()
        if ref in self.tenants:
            return self.tenants[ref]
        return next((t for t in self.tenants.values() if t.domain == ref), None)

    def add_user(self, address: str, tenant_id: str | None = None, *, oid: str | None = None,
                 name: str | None = None, is_admin: bool = False,
                 blocked_by_ca: bool = False) -> User:
        address = address.lower()
        if tenant_id is None:
            tenant = self.find_tenant(address.rpartition("@")[2])
            if tenant is None:
                raise KeyError(f"no tenant for {address}")
            tenant_id = tenant.id
        if tenant_id not in self.tenants:
            raise KeyError(f"unknown tenant {tenant_id}")
        user = User(address, tenant_id, oid or str(uuid.uuid4()),
                    name or address.partition("@")[0].title(), is_admin, blocked_by_ca)
        self.users[address] = user
        return user

    def add_client(self, client_id: str | None = None, secret: str | None = None,
                   redirect_uris: list[str] | None = None) -> Client:
        client = Client(client_id or str(uuid.uuid4()),
                        secret or secrets.token_urlsafe(24), list(redirect_uris or []))
        self.clients[client.client_id] = client
        return client

    def needs_admin_consent(self, user: User, client_id: str) -> bool:
        tenant = self.tenants[user.tenant_id]
        return not (tenant.user_consent_allowed or user.is_admin
                    or client_id in tenant.consented_clients)

    # --- grants ------------------------------------------------------------------------
    def new_pending(self, pending: PendingAuthorization) -> str:
        flow = secrets.token_urlsafe(16)
        self.pending[flow] = pending
        return flow

    def new_code(self, code: AuthCode) -> str:
        value = secrets.token_urlsafe(32)
        self.codes[value] = code
        return value

    def new_refresh_token(self, client_id: str, address: str, scopes: list[str]) -> str:
        value = "rt." + secrets.token_urlsafe(48)
        self.refresh_tokens[value] = RefreshToken(client_id, address, scopes,
                                                  self.next_seq(), time.time())
        return value

    def register_access_token(self, value: str, token: AccessToken) -> None:
        self.access_tokens[value] = token

    def access_token_active(self, token: AccessToken) -> bool:
        if token.expires_at <= time.time() or token.seq <= self.access_expired_before:
            return False
        if token.address is None:
            tenant = self.tenants.get(token.tenant_id)
            return tenant is not None and token.client_id in tenant.consented_clients
        user = self.users.get(token.address)
        if user is None:
            return False
        return token.seq > max(user.revoked_before, user.access_expired_before)

    # --- failure injection and counters --------------------------------------------------
    def take_failure(self) -> Failure | None:
        if not self.failures:
            return None
        failure = self.failures[0]
        failure.count -= 1
        if failure.count <= 0:
            self.failures.pop(0)
        return failure

    def count_user(self, address: str, grant_type: str) -> None:
        self.user_counts[address][grant_type] += 1

    def stats(self) -> dict[str, Any]:
        return {
            "grants": dict(self.grant_counts),
            "users": {a: dict(c) for a, c in self.user_counts.items()},
            "introspection": dict(self.introspections),
            "pending_failures": [vars(f) for f in self.failures],
        }
