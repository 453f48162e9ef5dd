"""JWT signing (RS256) with one key generated per process, and the JWKS that publishes it."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

OUTLOOK_DELEGATED_AUDIENCE = "https://outlook.office.com"
OUTLOOK_APP_AUDIENCE = "https://outlook.office365.com"


class Signer:
    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}


def issuer(base_url: str, tenant_id: str) -> str:
    return f"{base_url}/{tenant_id}/v2.0"


def client_info(oid: str, tenant_id: str) -> str:
    raw = json.dumps({"uid": oid, "utid": tenant_id}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def id_token_claims(*, base_url: str, client_id: str, tenant_id: str, oid: str,
                    address: str, name: str, nonce: str | None,
                    lifetime: int = 3600) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": issuer(base_url, tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tenant_id,
        "oid": oid,
        # Entra's `sub` is pairwise per app; a stable hash of (client, oid) behaves alike.
        "sub": uuid.uuid5(uuid.NAMESPACE_URL, f"{client_id}/{oid}").hex,
        "preferred_username": address,
        "name": name,
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return claims


def access_token_claims(*, base_url: str, client_id: str, tenant_id: str, lifetime: int,
                        scopes: list[str], oid: str | None = None,
                        address: str | None = None) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"{base_url}/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tenant_id,
        "appid": client_id,
        "jti": uuid.uuid4().hex,
        "ver": "1.0",
    }
    if address is None:
        claims.update(aud=OUTLOOK_APP_AUDIENCE, roles=["IMAP.AccessAsApp"], idtyp="app")
    else:
        names = [s.rsplit("/", 1)[-1] for s in scopes if s.startswith("https://")]
        claims.update(aud=OUTLOOK_DELEGATED_AUDIENCE, oid=oid, upn=address,
                      unique_name=address, scp=" ".join(names))
    return claims
