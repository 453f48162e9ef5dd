"""A small client for the identity emulator's `/_control/` API (and a scripted sign-in)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import requests


def make_session(ca_path: str) -> requests.Session:
    """A requests session that trusts only the stand-in CA.

    `trust_env = False` matters: REQUESTS_CA_BUNDLE would otherwise override `verify`.
    """
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_path
    return session


class ControlClient:
    def __init__(self, base_url: str, ca_path: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = make_session(ca_path)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        response = self.session.request(method, f"{self.base_url}/_control{path}", json=body,
                                        timeout=10)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()  # every control endpoint answers an object
        return answer

    # directory
    def create_tenant(self, domain: str, tenant_id: str | None = None,
                      user_consent_allowed: bool = True) -> dict[str, Any]:
        return self._call("POST", "/tenants", {"domain": domain, "id": tenant_id,
                                               "user_consent_allowed": user_consent_allowed})

    def grant_admin_consent(self, tenant_id: str, client_id: str,
                            granted: bool = True) -> dict[str, Any]:
        return self._call("POST", f"/tenants/{tenant_id}/admin-consent",
                          {"client_id": client_id, "granted": granted})

    def create_user(self, address: str, *, tenant: str | None = None, oid: str | None = None,
                    name: str | None = None, is_admin: bool = False,
                    blocked_by_ca: bool = False) -> dict[str, Any]:
        return self._call("POST", "/users", {
            "address": address, "tenant": tenant, "oid": oid, "name": name,
            "is_admin": is_admin, "blocked_by_ca": blocked_by_ca})

    def update_user(self, address: str, **flags: bool) -> dict[str, Any]:
        return self._call("PUT", f"/users/{quote(address)}", flags)

    def register_client(self, client_id: str | None = None, secret: str | None = None,
                        redirect_uris: list[str] | None = None) -> dict[str, Any]:
        return self._call("POST", "/clients", {"client_id": client_id, "secret": secret,
                                               "redirect_uris": redirect_uris or []})

    def rotate_secret(self, client_id: str, secret: str | None = None) -> str:
        return str(self._call("POST", f"/clients/{client_id}/rotate-secret",
                              {"secret": secret})["secret"])

    def expire_secret(self, client_id: str, expired: bool = True) -> dict[str, Any]:
        return self._call("POST", f"/clients/{client_id}/expire-secret", {"expired": expired})

    # grant and token invalidation
    def revoke_user(self, address: str) -> dict[str, Any]:
        """Refresh → invalid_grant AADSTS50173; the user's access tokens stop introspecting."""
        return self._call("POST", f"/users/{quote(address)}/revoke")

    def expire_refresh_tokens(self, address: str) -> dict[str, Any]:
        """Refresh tokens issued so far → invalid_grant AADSTS700082 (inactivity)."""
        return self._call("POST", f"/users/{quote(address)}/expire-refresh-tokens")

    def require_mfa(self, address: str) -> dict[str, Any]:
        """Refresh tokens issued so far → interaction_required AADSTS50076."""
        return self._call("POST", f"/users/{quote(address)}/require-mfa")

    def clear_mfa(self, address: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{quote(address)}/clear-mfa")

    def expire_access_tokens(self, address: str | None = None) -> None:
        """Access tokens issued so far stop introspecting as active (all, or one user's)."""
        self._call("POST", "/access-tokens/expire", {"address": address})

    def set_access_token_lifetime(self, seconds: int) -> None:
        self._call("PUT", "/settings", {"access_token_lifetime": seconds})

    def set_id_token_fault(self, fault: str | None) -> None:
        """``"nonce"`` or ``"issuer"``: later id_tokens carry a wrong claim; None: correct."""
        self._call("PUT", "/settings", {"id_token_fault": fault})

    # failures and observation
    def inject_failure(self, status: int, count: int = 1,
                       retry_after: int | None = None) -> None:
        self._call("POST", "/failures", {"status": status, "count": count,
                                         "retry_after": retry_after})

    def clear_failures(self) -> None:
        self._call("POST", "/failures/clear")

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/stats"))

    def reset_stats(self) -> None:
        self._call("POST", "/stats/reset")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def describe(self) -> dict[str, Any]:
        return dict(self._call("GET", "/state"))


_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_ACTION = re.compile(r'<form id="(?:signin|adminconsent)" method="post" action="([^"]+)">')
_ERROR = re.compile(r"<p id='error'[^>]*>([^<]*)</p>")


class SignInError(RuntimeError):
    """The sign-in page answered with an error instead of a redirect."""


def sign_in(session: requests.Session, auth_uri: str, username: str,
            action: str = "accept") -> str:
    """Drive the emulator's sign-in (or admin-consent) page the way a browser would.

    Returns the redirect URL (with `code`/`state` or `error…`) without following it.
    """
    page = session.get(auth_uri, allow_redirects=False, timeout=10)
    if page.status_code == 302:
        return page.headers["location"]
    found = _ACTION.search(page.text)
    if page.status_code != 200 or found is None:
        error = _ERROR.search(page.text)
        raise SignInError(unescape(error.group(1)) if error else page.text)
    form = {name: unescape(value) for name, value in _HIDDEN.findall(page.text)}
    form.update(username=username, action=action)
    answer = session.post(urljoin(auth_uri, unescape(found.group(1))), data=form,
                          allow_redirects=False, timeout=10)
    if answer.status_code != 302:
        error = _ERROR.search(answer.text)
        raise SignInError(unescape(error.group(1)) if error else answer.text)
    return str(answer.headers["location"])


def redirect_params(url: str) -> dict[str, str]:
    """The query parameters of a redirect, one value each (as msal wants `auth_response`)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
