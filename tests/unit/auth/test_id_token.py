"""id_token validation: msal hands back unvalidated claims, so a forged, foreign or stale
id_token must be refused here before its tid/oid can name a mailbox's owner."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.auth.id_token import (
    IdTokenVerifier,
    InvalidIdToken,
    SigningKeysUnavailable,
    signed_in_account,
)

AUTHORITY = "https://login.example"
CLIENT_ID = "client-1"
TENANT = str(uuid.uuid4())
OID = str(uuid.uuid4())


class _Answer:
    def __init__(self, body: Any) -> None:
        self._body = body

    def raise_for_status(self) -> None:
        if self._body is None:
            raise ValueError("503")

    def json(self) -> Any:
        return self._body


class _Authority:
    """Serves discovery and a JWKS, as the identity platform does."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "k1"
        self.up = True
        self.fetches = 0

    def get(self, url: str, timeout: float) -> _Answer:
        if not self.up:
            return _Answer(None)
        if url.endswith("/openid-configuration"):
            return _Answer({"jwks_uri": f"{AUTHORITY}/organizations/discovery/v2.0/keys"})
        self.fetches += 1
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return _Answer({"keys": [jwk]})


def _token(key: Any, kid: str = "k1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "aud": CLIENT_ID,
        "iss": f"{AUTHORITY}/{TENANT}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "tid": TENANT,
        "oid": OID,
        "preferred_username": "Ana@Example.com",
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def authority() -> _Authority:
    return _Authority()


@pytest.fixture
def verifier(authority: _Authority) -> IdTokenVerifier:
    return IdTokenVerifier(authority, AUTHORITY, "organizations", CLIENT_ID)  # type: ignore[arg-type]


def test_a_genuine_id_token_names_its_account(
    authority: _Authority, verifier: IdTokenVerifier
) -> None:
    """Signature, issuer of its own tenant, audience and lifetime check out: the account is
    (tid, oid), the lower-cased username only an attribute."""
    claims = verifier.verify(_token(authority.key))
    account = signed_in_account(claims)
    assert account is not None
    assert (account.tenant_id, account.object_id, account.username) == (
        TENANT,
        OID,
        "ana@example.com",
    )


@pytest.mark.parametrize(
    "forgery",
    [
        "signed by another key",
        "for another application",
        "issued for another tenant",
        "expired an hour ago",
        "unsigned (alg none)",
        "not a JWT",
        "missing",
    ],
)
def test_forged_or_foreign_id_tokens_are_refused(
    authority: _Authority, verifier: IdTokenVerifier, forgery: str
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {
        "signed by another key": lambda: _token(other),
        "for another application": lambda: _token(authority.key, aud="someone-else"),
        "issued for another tenant": lambda: _token(
            authority.key, iss=f"{AUTHORITY}/{uuid.uuid4()}/v2.0"
        ),
        "expired an hour ago": lambda: _token(
            authority.key, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200
        ),
        "unsigned (alg none)": lambda: jwt.encode(
            {"tid": TENANT, "oid": OID, "aud": CLIENT_ID},
            None,
            algorithm="none",
            headers={"kid": "k1"},
        ),
        "not a JWT": lambda: "abc.def",
        "missing": lambda: None,
    }[forgery]()
    with pytest.raises(InvalidIdToken):
        verifier.verify(token)


def test_a_rolled_key_is_fetched_but_unknown_kids_do_not_hammer_the_authority(
    authority: _Authority, verifier: IdTokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key rollover: a token with a new kid fetches the key set again (a minute after the
    last fetch) and verifies; made-up kids are refused without a fetch each."""
    verifier.verify(_token(authority.key))
    authority.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    authority.kid = "k2"
    later = time.monotonic() + 61
    monkeypatch.setattr("services.auth.id_token.time.monotonic", lambda: later)
    verifier.verify(_token(authority.key, kid="k2"))
    for _ in range(5):
        with pytest.raises(InvalidIdToken):
            verifier.verify(_token(authority.key, kid="k9"))
    assert authority.fetches == 2


def test_an_unreachable_key_set_is_transient_not_a_verdict(
    authority: _Authority, verifier: IdTokenVerifier
) -> None:
    authority.up = False
    with pytest.raises(SigningKeysUnavailable):
        verifier.verify(_token(authority.key))


def test_claims_without_tid_or_oid_name_no_account() -> None:
    assert signed_in_account({"tid": TENANT, "preferred_username": "a@b.c"}) is None
    assert signed_in_account({"oid": OID, "preferred_username": "a@b.c"}) is None
    assert signed_in_account({"tid": TENANT, "oid": OID}) is None
