"""Validate the id_tokens msal hands back: msal decodes them but no longer checks them.

msal 1.38+ returns ``id_token_claims`` unvalidated (only the nonce is compared); the
claims decide which mailbox a grant belongs to, so the signature, issuer, audience and
lifetime are checked here, per Microsoft's guidance for multi-tenant apps: the issuer
must be the authority's v2.0 issuer of the token's own ``tid``
(https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference,
https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Microsoft rolls its signing keys; an unknown kid refetches the key set, at most this often.
_REFETCH_SECONDS = 60.0
_KEYS_MAX_AGE = 24 * 3600.0
_LEEWAY_SECONDS = 300


class InvalidIdToken(Exception):
    """The id_token is missing, forged, expired, or not for this application."""


class SigningKeysUnavailable(Exception):
    """The authority's key set could not be fetched: a transient failure, not a verdict."""


@dataclass(frozen=True)
class SignedInAccount:
    tenant_id: str
    object_id: str
    username: str  # preferred_username: display and IMAP login name, never the key


class IdTokenVerifier:
    def __init__(
        self, session: requests.Session, authority_host: str, tenant: str, client_id: str
    ) -> None:
        self._session = session
        self._authority_host = authority_host
        self._tenant = tenant
        self._client_id = client_id
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")

    def verify(self, id_token: str | None) -> dict[str, Any]:
        """The claims of a genuine, current id_token issued to us; else InvalidIdToken."""
        if not id_token:
            raise InvalidIdToken("no id_token")
        try:
            header = jwt.get_unverified_header(id_token)
            unverified = jwt.decode(id_token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidIdToken(f"malformed id_token: {type(exc).__name__}") from exc
        tenant_id = str(unverified.get("tid", "")).lower()
        if not _GUID.match(tenant_id):
            raise InvalidIdToken("id_token without a tenant id")
        key = self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=["RS256"],
                audience=self._client_id,
                issuer=f"{self._authority_host}/{tenant_id}/v2.0",
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidIdToken(f"id_token refused: {type(exc).__name__}") from exc
        return claims

    def _key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if (kid not in self._keys and age > _REFETCH_SECONDS) or age > _KEYS_MAX_AGE:
                self._keys = self._fetch_keys()
                self._fetched_at = time.monotonic()
            if kid not in self._keys:
                raise InvalidIdToken("id_token signed with an unknown key")
            return self._keys[kid]

    def _fetch_keys(self) -> dict[str, jwt.PyJWK]:
        base = f"{self._authority_host}/{self._tenant}"
        try:
            discovery = self._session.get(
                f"{base}/v2.0/.well-known/openid-configuration", timeout=15
            )
            discovery.raise_for_status()
            answer = self._session.get(discovery.json()["jwks_uri"], timeout=15)
            answer.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(answer.json())
        except (requests.RequestException, ValueError, KeyError, jwt.PyJWTError) as exc:
            raise SigningKeysUnavailable(type(exc).__name__) from exc
        return {str(k.key_id): k for k in key_set.keys if k.key_id}


def signed_in_account(claims: dict[str, Any]) -> SignedInAccount | None:
    """The account a validated id_token names; None when a claim we key on is missing."""
    tenant_id = str(claims.get("tid", "")).lower()
    object_id = str(claims.get("oid", "")).lower()
    username = str(claims.get("preferred_username", "")).strip().lower()
    if not (_GUID.match(tenant_id) and _GUID.match(object_id) and username):
        return None
    return SignedInAccount(tenant_id, object_id, username)
