"""The auth service's HTTP surface refuses what it must: no admin credential, a bad
OAuth ``state``, a code that was issued to someone else, a redirect URI from the request."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import requests

from standin.control import redirect_params, sign_in
from standin.testing import StandIn
from tests.conftest import new_address
from tests.security.conftest import StartAuth
from tests.support.flows import connect_mailbox, start_sign_in
from tests.support.services import ADMIN_TOKEN, Services


def _browser() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _mailbox_count(auth: Services) -> int:
    with psycopg.connect(auth.env["BANDEJA_DATABASE_URL"]) as conn:
        row = conn.execute("SELECT count(*) FROM mailboxes").fetchone()
    assert row is not None
    return int(row[0])


def _start(auth: Services, address: str) -> tuple[requests.Session, str]:
    """GET /connect; return the browser and the authorize URL it was sent to."""
    return start_sign_in(auth.auth_url, address)


def _assert_refused(response: requests.Response) -> None:
    assert response.status_code == 400, response.text
    assert "Buzón conectado" not in response.text


BAD_CREDENTIALS = {
    "missing": ({}, {}),
    "basic scheme": ({"Authorization": f"Basic {ADMIN_TOKEN}"}, {}),
    "token scheme": ({"Authorization": f"Token {ADMIN_TOKEN}"}, {}),
    "bare token": ({"Authorization": ADMIN_TOKEN}, {}),
    "empty bearer": ({"Authorization": "Bearer "}, {}),
    "wrong token": ({"Authorization": "Bearer nope"}, {}),
    "token prefix": ({"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}, {}),
    "token plus suffix": ({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, {}),
    "token with space": ({"Authorization": f"Bearer  {ADMIN_TOKEN}"}, {}),
    "as query access_token": ({}, {"access_token": ADMIN_TOKEN}),
    "as query token": ({}, {"token": ADMIN_TOKEN}),
    "as query admin_token": ({}, {"admin_token": ADMIN_TOKEN}),
    "as cookie": ({"Cookie": f"token={ADMIN_TOKEN}; admin_token={ADMIN_TOKEN}"}, {}),
    "x-api-key header": ({"X-Api-Key": ADMIN_TOKEN}, {}),
}


def test_admin_api_refuses_every_request_without_the_bearer_credential(
    auth: Services, standin: StandIn, tenant: dict
) -> None:
    """GET /api/mailboxes and DELETE /api/mailboxes/{id} answer 401 (with
    ``WWW-Authenticate: Bearer``) to a missing, wrong-scheme, wrong or misplaced admin
    token, never echo it, and leave the mailbox connected."""
    address = new_address(tenant, "admin")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    assert connect_mailbox(auth.auth_url, standin, address).status_code == 200
    [mailbox] = auth.admin_get("/api/mailboxes").json()
    for name, (headers, params) in BAD_CREDENTIALS.items():
        delete = f"/api/mailboxes/{mailbox['id']}"
        for method, path in (("GET", "/api/mailboxes"), ("DELETE", delete)):
            answer = requests.request(
                method, f"{auth.auth_url}{path}", headers=headers, params=params, timeout=10
            )
            assert answer.status_code == 401, (name, method, answer.status_code, answer.text)
            assert answer.headers.get("www-authenticate") == "Bearer", name
            assert ADMIN_TOKEN not in answer.text, name
            assert address not in answer.text, name
    assert [m["state"] for m in auth.admin_get("/api/mailboxes").json()] == ["active"]


def test_callback_refuses_a_forged_state(auth: Services, standin: StandIn, tenant: dict) -> None:
    """A real code with a state Bandeja never issued (or none at all) connects nothing."""
    address = new_address(tenant, "forged")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    browser, authorize_url = _start(auth, address)
    params = redirect_params(sign_in(standin.identity.session(), authorize_url, address))
    for state in ("forged-" + uuid.uuid4().hex, "", None):
        forged = (
            {**params, "state": state}
            if state is not None
            else {k: v for k, v in params.items() if k != "state"}
        )
        _assert_refused(browser.get(f"{auth.auth_url}/oauth/callback", params=forged, timeout=15))
    assert _mailbox_count(auth) == 0


def test_callback_refuses_a_replayed_state(auth: Services, standin: StandIn, tenant: dict) -> None:
    """The second use of a real callback URL is refused, and nothing changes."""
    address = new_address(tenant, "replay")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    browser, authorize_url = _start(auth, address)
    callback_url = sign_in(standin.identity.session(), authorize_url, address)
    assert browser.get(callback_url, timeout=15).status_code == 200
    replay = browser.get(callback_url, timeout=15)
    _assert_refused(replay)
    assert "ya se usó" in replay.text
    assert _mailbox_count(auth) == 1


def test_callback_refuses_an_expired_state(
    start_auth: StartAuth, standin: StandIn, tenant: dict
) -> None:
    """With BANDEJA_OAUTH_STATE_TTL=2, a callback arriving after three seconds is refused."""
    auth = start_auth(BANDEJA_OAUTH_STATE_TTL="2")
    address = new_address(tenant, "late")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    browser, authorize_url = _start(auth, address)
    callback_url = sign_in(standin.identity.session(), authorize_url, address)
    time.sleep(3)
    _assert_refused(browser.get(callback_url, timeout=15))
    assert _mailbox_count(auth) == 0


def test_callback_refuses_a_code_issued_to_another_client(
    auth: Services, standin: StandIn, tenant: dict
) -> None:
    """A code the emulator issued to another app registration (same redirect URI), sent
    with a valid state of ours, fails at token redemption; no mailbox appears."""
    address = new_address(tenant, "otherapp")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    other = standin.identity.control.register_client(
        redirect_uris=[f"{auth.auth_url}/oauth/callback"]
    )
    other_app = standin.identity.msal_app(other["client_id"], other["secret"])
    other_flow = other_app.initiate_auth_code_flow(
        ["https://outlook.office.com/IMAP.AccessAsUser.All"],
        redirect_uri=f"{auth.auth_url}/oauth/callback",
        login_hint=address,
    )
    foreign = redirect_params(sign_in(standin.identity.session(), other_flow["auth_uri"], address))
    assert "code" in foreign, foreign
    browser, authorize_url = _start(auth, address)
    ours = parse_qs(urlsplit(authorize_url).query)["state"][0]
    answer = browser.get(
        f"{auth.auth_url}/oauth/callback",
        params={"code": foreign["code"], "state": ours},
        timeout=15,
    )
    _assert_refused(answer)
    assert foreign["code"] not in answer.text
    assert _mailbox_count(auth) == 0


@pytest.mark.parametrize("path", ["/connect", "/admin-consent"])
def test_redirect_uri_comes_from_settings_never_from_the_request(auth: Services, path: str) -> None:
    """``redirect_uri`` (and look-alikes) in the request do not reach the authorize URL."""
    expected = {
        "/connect": f"{auth.auth_url}/oauth/callback",
        "/admin-consent": f"{auth.auth_url}/admin-consent/callback",
    }[path]
    evil = "https://evil.example/steal"
    answer = _browser().get(
        f"{auth.auth_url}{path}",
        params={
            "redirect_uri": evil,
            "redirect_url": evil,
            "return_to": evil,
            "next": evil,
            "login_hint": "someone@example.com",
        },
        allow_redirects=False,
        timeout=15,
    )
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(auth.env["BANDEJA_AUTHORITY_HOST"] + "/"), location
    assert parse_qs(urlsplit(location).query)["redirect_uri"] == [expected]
    assert "evil.example" not in location


@pytest.mark.parametrize(
    "path",
    [
        "/connect?login_hint=a%00b",
        "/oauth/callback?state=a%00b&code=x",
        "/admin-consent/callback?state=a%00b&admin_consent=True&tenant=t",
    ],
)
def test_nul_bytes_in_query_parameters_are_refused_not_crashed_on(
    auth: Services, path: str
) -> None:
    """A NUL in a parameter that reaches PostgreSQL is a 4xx, not a 500 (PostgreSQL text
    cannot hold NUL; psycopg raises DataError)."""
    answer = _browser().get(f"{auth.auth_url}{path}", allow_redirects=False, timeout=15)
    assert answer.status_code < 500, (path, answer.status_code, answer.text[:200])
    assert "Traceback" not in answer.text
