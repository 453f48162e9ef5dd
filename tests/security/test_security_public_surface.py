"""What a stranger on the internet can cost us through the public routes, and what a careless
set-up is refused: rate limits, metric series, flow rows, hostile callback parameters,
security headers, the status session, weak settings (issue 16)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid

import psycopg
import requests

from standin.testing import StandIn
from tests.conftest import new_address
from tests.security.conftest import StartAuth
from tests.support.flows import browser, connect_mailbox, start_sign_in
from tests.support.services import ADMIN_TOKEN, Services


def _flow_rows(auth: Services) -> int:
    with psycopg.connect(auth.env["BANDEJA_DATABASE_URL"]) as conn:
        row = conn.execute("SELECT count(*) FROM oauth_flows").fetchone()
    assert row is not None
    return int(row[0])


def test_public_routes_answer_429_with_retry_after_past_the_per_address_limit(
    start_auth: StartAuth,
) -> None:
    """With BANDEJA_PUBLIC_RATE_LIMIT=5/minute the sixth /connect from one address gets 429
    and a Retry-After, and writes no flow row; a forged X-Forwarded-For from a peer that is
    not a trusted proxy changes nothing; the admin API is not counted."""
    auth = start_auth(BANDEJA_PUBLIC_RATE_LIMIT="5/minute", BANDEJA_TRUSTED_PROXIES="10.255.255.1")
    url = f"{auth.auth_url}/connect"
    answers = [
        requests.get(
            url,
            params={"login_hint": f"u{i}@example.com"},
            allow_redirects=False,
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
            timeout=10,
        )
        for i in range(8)
    ]
    assert [a.status_code for a in answers] == [302] * 5 + [429] * 3
    retry_after = int(answers[-1].headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert _flow_rows(auth) == 5
    # The other public routes share the address's budget; the admin API has its own guard.
    assert (
        requests.get(
            f"{auth.auth_url}/admin-consent", allow_redirects=False, timeout=10
        ).status_code
        == 429
    )
    assert (
        requests.post(f"{auth.auth_url}/status/login", data={"token": "x"}, timeout=10).status_code
        == 429
    )
    assert auth.admin_get("/api/mailboxes").status_code == 200


def test_invented_methods_and_paths_add_no_metric_series(auth: Services) -> None:
    """Hundreds of invented HTTP methods and paths are counted under ``other``: the number
    of bandeja_http_requests series does not grow with them."""

    def series() -> set[str]:
        text = requests.get(f"{auth.auth_url}/metrics", timeout=10).text
        return {
            line.split(" ")[0]
            for line in text.splitlines()
            if line.startswith("bandeja_http_requests_total{")
        }

    def invent(n: int) -> None:
        with requests.Session() as session:
            for i in range(n):
                method = f"X{uuid.uuid4().hex[:10].upper()}"
                path = f"/{uuid.uuid4().hex}/{i}"
                session.request(method, f"{auth.auth_url}{path}", timeout=10)
                session.request(method, f"{auth.auth_url}/connect", timeout=10)
                session.get(f"{auth.auth_url}{path}", timeout=10)

    invent(1)  # the first unknown ones create the `other` series once
    series()  # and so does the first scrape, for /metrics itself
    before = series()
    invent(150)
    after = series()
    assert after == before, sorted(after - before)[:5]
    assert any('method="other"' in s for s in after)
    assert any('route="other"' in s for s in after)
    assert not any(re.search(r'method="X[0-9A-F]{10}"', s) for s in after)


def test_expired_sign_in_flows_are_purged_continuously(start_auth: StartAuth) -> None:
    """Flows started and never finished are deleted once expired, by the auth process
    itself (BANDEJA_OAUTH_STATE_TTL=1, BANDEJA_FLOW_PURGE_INTERVAL=0.5)."""
    auth = start_auth(BANDEJA_OAUTH_STATE_TTL="1", BANDEJA_FLOW_PURGE_INTERVAL="0.5")
    for i in range(10):
        start_sign_in(auth.auth_url, f"abandoned{i}@example.com")
        requests.get(f"{auth.auth_url}/admin-consent", allow_redirects=False, timeout=10)
    assert _flow_rows(auth) == 20
    deadline = time.monotonic() + 15
    while _flow_rows(auth) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _flow_rows(auth) == 0


def test_public_pages_forbid_framing_caching_and_referrers(
    auth: Services, standin: StandIn, tenant: dict
) -> None:
    """Every HTML page (a refusal, a connected page, the status login) and the redirect to
    Microsoft carry CSP with frame-ancestors 'none', Referrer-Policy: no-referrer and
    Cache-Control: no-store."""
    address = new_address(tenant, "headers")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    answers = {
        "refusal": requests.get(
            f"{auth.auth_url}/connect", params={"login_hint": "nope"}, timeout=10
        ),
        "bad state": requests.get(
            f"{auth.auth_url}/oauth/callback", params={"state": "x" * 20}, timeout=10
        ),
        "redirect": requests.get(
            f"{auth.auth_url}/connect",
            params={"login_hint": address},
            allow_redirects=False,
            timeout=10,
        ),
        "connected": connect_mailbox(auth.auth_url, standin, address),
        "status login": requests.get(f"{auth.auth_url}/status", timeout=10),
        "admin consent": requests.get(f"{auth.auth_url}/admin-consent/callback", timeout=10),
    }
    for name, answer in answers.items():
        csp = answer.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp, name
        assert "default-src 'none'" in csp, name
        assert answer.headers.get("referrer-policy") == "no-referrer", name
        assert answer.headers.get("cache-control") == "no-store", name
    assert answers["connected"].status_code == 200


def test_a_description_with_thousands_of_digits_is_an_ordinary_failure_page(
    auth: Services, standin: StandIn, tenant: dict
) -> None:
    """``error_description=AADSTS`` and 5,000 digits (more than int() parses) on a valid
    state ends on the usual failure page, not a 500."""
    address = new_address(tenant, "digits")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    session, authorize = start_sign_in(auth.auth_url, address)
    state = re.search(r"[?&]state=([^&]+)", authorize)
    assert state is not None
    page = session.get(
        f"{auth.auth_url}/oauth/callback",
        params={
            "state": state.group(1),
            "error": "invalid_request",
            "error_description": "AADSTS" + "9" * 5000,
        },
        timeout=15,
    )
    assert page.status_code == 400, page.text[:300]
    assert 'data-outcome="invalid_request"' in page.text
    assert "9" * 50 not in page.text


def test_an_id_token_msal_refuses_ends_on_a_clear_page(
    auth: Services, standin: StandIn, tenant: dict
) -> None:
    """An id_token carrying another sign-in's nonce (msal raises RuntimeError; msal before
    1.38 raised IdTokenIssuerError, a RuntimeError too, for a foreign issuer) ends on a
    'start again' page and connects nothing."""
    address = new_address(tenant, "nonce")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    standin.identity.control.set_id_token_fault("nonce")
    try:
        page = connect_mailbox(auth.auth_url, standin, address)
    finally:
        standin.identity.control.set_id_token_fault(None)
    assert page.status_code == 400, page.text[:300]
    assert 'data-outcome="invalid_id_token"' in page.text
    assert "Vuelva a empezar" in page.text
    assert auth.admin_get("/api/mailboxes").json() == []


def test_the_status_session_expires(start_auth: StartAuth) -> None:
    """The login cookie carries Max-Age, and the server refuses it once its signed login
    time is older than BANDEJA_STATUS_SESSION_SECONDS, even when the browser keeps it."""
    auth = start_auth(BANDEJA_STATUS_SESSION_SECONDS="2")
    session = browser()
    login = session.post(
        f"{auth.auth_url}/status/login",
        data={"token": ADMIN_TOKEN},
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 303
    assert "Max-Age=2" in login.headers["set-cookie"]
    cookie = session.cookies.get("bandeja_status")
    assert cookie
    assert ADMIN_TOKEN not in cookie
    status = f"{auth.auth_url}/status"
    assert requests.get(status, cookies={"bandeja_status": cookie}, timeout=10).status_code == 200
    time.sleep(3)
    assert requests.get(status, cookies={"bandeja_status": cookie}, timeout=10).status_code == 401
    # A login time moved forward by hand does not verify.
    issued, _, signature = cookie.partition(".")
    moved = f"{int(issued) + 3}.{signature}"
    assert requests.get(status, cookies={"bandeja_status": moved}, timeout=10).status_code == 401


def _start_refused(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services", command],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_short_admin_token_is_refused_at_start(services_env: dict[str, str]) -> None:
    """``bandeja auth`` with a 31-character admin token exits at once, saying why, without
    printing the token."""
    short = "s3cr3t-but-31-characters-long!!"
    assert len(short) == 31
    done = _start_refused({**services_env, "BANDEJA_ADMIN_TOKEN": short}, "auth")
    assert done.returncode != 0
    assert "BANDEJA_ADMIN_TOKEN is shorter than 32 characters" in done.stderr
    assert short not in done.stderr + done.stdout


def test_plain_imap_is_refused_unless_the_host_is_loopback(services_env: dict[str, str]) -> None:
    """``BANDEJA_IMAP_TLS=false`` would send bearer tokens in clear: the fetcher refuses to
    start with a remote IMAP host (loopback hosts: tests/unit/common/test_settings.py)."""
    env = {**services_env, "BANDEJA_IMAP_TLS": "false", "BANDEJA_IMAP_HOST": "imap.example.com"}
    done = _start_refused(env, "fetcher")
    assert done.returncode != 0
    assert "BANDEJA_IMAP_TLS=false is refused for 'imap.example.com'" in done.stderr
