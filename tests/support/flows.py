"""Drive the real connect flow over HTTP, as a person's browser would."""

from __future__ import annotations

import requests

from standin.control import sign_in
from standin.testing import StandIn


def connect_mailbox(
    auth_url: str, standin: StandIn, address: str, action: str = "accept"
) -> requests.Response:
    """GET /connect → the emulator's sign-in page → accept → GET /oauth/callback."""
    browser = requests.Session()
    browser.trust_env = False
    start = browser.get(
        f"{auth_url}/connect", params={"login_hint": address}, allow_redirects=False, timeout=15
    )
    assert start.status_code == 302, start.text
    callback_url = sign_in(standin.identity.session(), start.headers["location"], address, action)
    assert callback_url.startswith(auth_url), callback_url
    return browser.get(callback_url, allow_redirects=False, timeout=30)
