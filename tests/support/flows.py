"""Drive the real connect flow over HTTP, as a person's browser would."""

from __future__ import annotations

import itertools
from typing import Any

import requests

from standin.control import sign_in
from standin.testing import StandIn

_names = itertools.count()


def browser() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def start_sign_in(auth_url: str, address: str, **params: str) -> tuple[requests.Session, str]:
    """GET /connect; return the browser and the authority's authorize URL it was sent to."""
    session = browser()
    start = session.get(
        f"{auth_url}/connect",
        params={"login_hint": address, **params},
        allow_redirects=False,
        timeout=15,
    )
    assert start.status_code == 302, start.text
    return session, start.headers["location"]


def connect_mailbox(
    auth_url: str, standin: StandIn, address: str, action: str = "accept"
) -> requests.Response:
    """GET /connect → the emulator's sign-in page → accept → GET /oauth/callback."""
    session, authorize = start_sign_in(auth_url, address)
    callback_url = sign_in(standin.identity.session(), authorize, address, action)
    assert callback_url.startswith(auth_url), callback_url
    return session.get(callback_url, allow_redirects=False, timeout=30)


def connect_new_mailbox(standin: StandIn, auth_url: str, tenant: dict[str, Any], name: str) -> str:
    """A new user of ``tenant`` in the emulator, connected through the real flow."""
    address = f"{name}{next(_names)}@{tenant['domain']}"
    standin.identity.control.create_user(address, tenant=tenant["id"])
    page = connect_mailbox(auth_url, standin, address)
    assert page.status_code == 200, page.text
    return address
