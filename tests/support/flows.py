"""Drive the real connect flow over HTTP, as a person's browser would."""

from __future__ import annotations

import itertools
from typing import Any

import requests

from standin.control import sign_in
from standin.testing import StandIn
from tests.support.services import ADMIN_TOKEN

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


def open_link(url: str) -> tuple[requests.Session, requests.Response]:
    """A fresh browser opens a connect link (``/connect?…``); the answer, not followed."""
    session = browser()
    return session, session.get(url, allow_redirects=False, timeout=15)


def finish_sign_in(
    session: requests.Session, standin: StandIn, authorize: str, account: str
) -> requests.Response:
    """Sign in as ``account`` on the emulator's page and land on the callback."""
    callback_url = sign_in(standin.identity.session(), authorize, account)
    return session.get(callback_url, allow_redirects=False, timeout=30)


def mint_connect_link(auth_url: str, address: str, reference: str) -> dict[str, Any]:
    """What the ERP does: POST /api/connect-links with the admin credential."""
    answer = requests.post(
        f"{auth_url}/api/connect-links",
        json={"address": address, "reference": reference},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=15,
    )
    assert answer.status_code == 201, answer.text
    link: dict[str, Any] = answer.json()
    return link


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
