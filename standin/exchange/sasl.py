"""Decoding the SASL initial responses Bandeja sends: XOAUTH2, OAUTHBEARER and PLAIN.

XOAUTH2 [docs/architecture.md#exo-xoauth2]: `user=<addr>^Aauth=Bearer <token>^A^A`.
OAUTHBEARER (RFC 7628): `n,a=<addr>,^Ahost=…^Aport=…^Aauth=Bearer <token>^A^A`.
PLAIN (RFC 4616): `authzid^@authcid^@password`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER", "PLAIN"})


@dataclass(frozen=True)
class Credentials:
    mechanism: str
    user: str
    token: str | None


class SaslError(ValueError):
    """The initial response is not valid base64 or not in the mechanism's shape."""


def _fields(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in text.split("\x01"):
        key, sep, value = item.partition("=")
        if sep:
            found[key.strip().lower()] = value
    return found


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _xoauth2(text: str) -> Credentials:
    found = _fields(text)
    return Credentials("XOAUTH2", found.get("user", ""), _bearer(found.get("auth", "")))


def _oauthbearer(text: str) -> Credentials:
    gs2, _, rest = text.partition("\x01")
    user = ""
    for part in gs2.split(","):
        if part.startswith("a="):
            user = part[2:].replace("=2C", ",").replace("=3D", "=")
    return Credentials("OAUTHBEARER", user, _bearer(_fields(rest).get("auth", "")))


def _plain(text: str) -> Credentials:
    parts = text.split("\x00")
    if len(parts) != 3:
        raise SaslError("PLAIN needs authzid NUL authcid NUL password")
    return Credentials("PLAIN", parts[1] or parts[0], None)


def decode(mechanism: str, initial_response: str) -> Credentials:
    """The user (and bearer token) carried by a base64 initial response."""
    try:
        text = base64.b64decode(initial_response.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SaslError("initial response is not base64 of UTF-8") from exc
    decoder = {"XOAUTH2": _xoauth2, "OAUTHBEARER": _oauthbearer, "PLAIN": _plain}
    credentials = decoder[mechanism.upper()](text)
    if not credentials.user:
        raise SaslError(f"{mechanism} initial response names no user")
    return credentials
