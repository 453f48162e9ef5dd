"""Who a grant belongs to (issue 16): a mailbox is its Entra account (tid, oid), a flow
finishes only in the browser that started it, connect links are single-use and expire,
a disconnected mailbox needs a newer link, and only allowed tenants sign in. Every test
drives the real auth process, msal and the identity-platform stand-in."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import requests

from standin.control import sign_in
from standin.testing import StandIn
from tests.conftest import new_address
from tests.security.conftest import StartAuth
from tests.support.events import validate_event
from tests.support.flows import (
    browser,
    connect_mailbox,
    finish_sign_in,
    mint_connect_link,
    open_link,
    start_sign_in,
)
from tests.support.services import ADMIN_TOKEN, Services
from tests.support.waiting import query, wait_until


def _mailboxes(auth: Services) -> list[dict[str, Any]]:
    return query(
        auth.env["BANDEJA_DATABASE_URL"],
        "SELECT m.id, m.address, m.tenant_id, m.object_id, m.state, m.erp_reference,"
        " t.generation FROM mailboxes m LEFT JOIN mailbox_tokens t ON t.mailbox_id = m.id"
        " ORDER BY m.id",
    )


def _events(auth: Services, event_type: str) -> list[dict[str, Any]]:
    rows = query(
        auth.env["BANDEJA_DATABASE_URL"],
        "SELECT event FROM outbox WHERE event_type = %s ORDER BY created_at",
        event_type,
    )
    for row in rows:
        validate_event(row["event"])
    return [row["event"] for row in rows]


def _refused(page: requests.Response, outcome: str) -> None:
    assert page.status_code == 400, page.text
    assert f'data-outcome="{outcome}"' in page.text, page.text


def _sign_in_via(auth: Services, standin: StandIn, url: str, account: str) -> requests.Response:
    """Open a connect URL in a fresh browser, sign in as ``account``, land on the callback."""
    session, start = open_link(url)
    assert start.status_code == 302, start.text
    return finish_sign_in(session, standin, start.headers["location"], account)


def test_reconnect_by_another_account_is_refused_not_taken_over(
    auth: Services, standin: StandIn, tenant: dict
) -> None:
    """The address is re-created in the directory for another person (new oid), and
    another tenant gets a user with the same address: neither can reconnect the mailbox.
    Each gets the refusal page (es, en); the row keeps its account and tokens; the operator
    gets a log line naming the mailbox and both accounts."""
    control = standin.identity.control
    address = new_address(tenant, "owner")
    owner = control.create_user(address, tenant=tenant["id"])
    assert connect_mailbox(auth.auth_url, standin, address).status_code == 200
    [before] = _mailboxes(auth)
    assert (before["tenant_id"], before["object_id"]) == (tenant["id"], owner["oid"])

    successor = control.create_user(address, tenant=tenant["id"])  # same address, new oid
    page = connect_mailbox(auth.auth_url, standin, address)
    _refused(page, "account_mismatch")
    assert "ya está conectado con otra cuenta" in page.text

    other_tenant = control.create_tenant(f"elsewhere{time.monotonic_ns()}.example")
    control.create_user(address, tenant=other_tenant["id"])
    session, authorize = start_sign_in(auth.auth_url, address, lang="en")
    page = finish_sign_in(session, standin, authorize, address)
    _refused(page, "account_mismatch")
    assert "already connected with another Microsoft account" in page.text

    assert _mailboxes(auth) == [before]
    logs = auth.running["auth"].logs()
    assert logs.count("mailbox_connect_refused") == 2
    assert successor["oid"] in logs
    assert other_tenant["id"] in logs
    assert len(_events(auth, "bandeja.mailbox.connected")) == 1


def test_a_renamed_account_keeps_its_mailbox_and_old_rows_learn_their_account(
    auth: Services, standin: StandIn, tenant: dict
) -> None:
    """A row from before accounts were recorded (object_id NULL) gets its oid from the
    next refresh's id_token; the same account signing in under a new address moves the
    address of its existing mailbox instead of creating a second one."""
    control = standin.identity.control
    address = new_address(tenant, "legacy")
    person = control.create_user(address, tenant=tenant["id"])
    assert connect_mailbox(auth.auth_url, standin, address).status_code == 200
    dsn = auth.env["BANDEJA_DATABASE_URL"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE mailboxes SET object_id = NULL")
        conn.execute("UPDATE mailbox_tokens SET refresh_due_at = now()")
        conn.execute("NOTIFY bandeja_token_refresh")
    wait_until(
        lambda: _mailboxes(auth)[0]["object_id"] == person["oid"],
        20,
        what="the refresh to record the account",
    )

    renamed = new_address(tenant, "renamed")
    control.create_user(renamed, tenant=tenant["id"], oid=person["oid"])
    assert connect_mailbox(auth.auth_url, standin, renamed).status_code == 200
    [mailbox] = _mailboxes(auth)
    assert (mailbox["address"], mailbox["object_id"]) == (renamed, person["oid"])


def test_a_callback_opened_in_another_browser_connects_nothing(
    auth: Services, standin: StandIn, tenant: dict
) -> None:
    """Login CSRF: the callback URL of a flow started elsewhere (the attacker's, or a
    forwarded one) is refused with a clear page; the browser that started it still can."""
    address = new_address(tenant, "csrf")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    starter, authorize = start_sign_in(auth.auth_url, address)
    cookie = starter.cookies.get("bandeja_flow")
    assert cookie
    callback_url = sign_in(standin.identity.session(), authorize, address)

    victim = browser()
    _refused(victim.get(callback_url, timeout=15), "other_browser")
    planted = browser()
    planted.cookies.set("bandeja_flow", "A" * 43)  # a well-formed cookie, not the one bound
    _refused(planted.get(callback_url, timeout=15), "other_browser")
    assert _mailboxes(auth) == []

    page = starter.get(callback_url, timeout=15)
    assert page.status_code == 200, page.text
    assert [m["address"] for m in _mailboxes(auth)] == [address]


def test_an_admin_consent_callback_opened_in_another_browser_records_nothing(
    auth: Services, standin: StandIn
) -> None:
    """The admin-consent flow is bound the same way: a planted callback is refused, and
    the tenant's consent is recorded only from the browser that started it."""
    tenant = standin.identity.control.create_tenant(f"consent{time.monotonic_ns()}.example")
    admin = new_address(tenant, "admin")
    standin.identity.control.create_user(admin, tenant=tenant["id"], is_admin=True)
    starter, start = open_link(f"{auth.auth_url}/admin-consent?tenant={tenant['id']}")
    assert start.status_code == 302, start.text
    callback_url = sign_in(standin.identity.session(), start.headers["location"], admin)
    _refused(browser().get(callback_url, timeout=15), "other_browser")
    dsn = auth.env["BANDEJA_DATABASE_URL"]
    assert query(dsn, "SELECT 1 FROM tenants WHERE admin_consented_at IS NOT NULL") == []
    done = starter.get(callback_url, timeout=15)
    assert 'data-outcome="admin_consented"' in done.text, done.text
    consented = "SELECT tenant_id FROM tenants WHERE admin_consented_at IS NOT NULL"
    assert query(dsn, consented) == [{"tenant_id": tenant["id"]}]


def test_flow_cookie_is_httponly_lax_and_host_prefixed_secure_over_https(
    start_auth: StartAuth,
) -> None:
    """Over http the cookie is HttpOnly, SameSite=Lax, path /; with an https public URL
    it is ``__Host-`` prefixed and Secure (no Domain), so no sibling host can plant it."""
    plain = start_auth()
    answer = browser().get(
        f"{plain.auth_url}/connect", params={"login_hint": "a@b.example"}, allow_redirects=False
    )
    header = answer.headers["set-cookie"]
    assert header.startswith("bandeja_flow=")
    assert {"httponly", "samesite=lax", "path=/"} <= {p.strip().lower() for p in header.split(";")}
    assert "secure" not in header.lower()
    plain.stop()

    local = plain.env["BANDEJA_PUBLIC_URL"]
    public = start_auth(BANDEJA_PUBLIC_URL="https://bandeja.example.com")
    answer = browser().get(
        f"{local}/connect", params={"login_hint": "a@b.example"}, allow_redirects=False
    )
    header = answer.headers["set-cookie"]
    attributes = {p.strip().lower() for p in header.split(";")}
    assert header.startswith("__Host-bandeja_flow=")
    assert {"httponly", "samesite=lax", "path=/", "secure"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)
    public.stop()


def test_connect_link_is_single_use_expires_and_its_reference_reaches_every_event(
    start_auth: StartAuth, standin: StandIn, tenant: dict
) -> None:
    """The ERP mints a link (admin credential only) valid for 24 h; it connects the
    mailbox once, with the ERP's reference on the row and in the connected, reauth_needed
    and disconnected events; the same link again is refused; with
    BANDEJA_CONNECT_TICKET_TTL=1 a link two seconds old is refused before sign-in."""
    auth = start_auth()
    address = new_address(tenant, "ticket")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    unauthorised = requests.post(
        f"{auth.auth_url}/api/connect-links",
        json={"address": address, "reference": "CUST-1"},
        timeout=10,
    )
    assert unauthorised.status_code == 401
    link = mint_connect_link(auth.auth_url, address, "CUST-1")
    assert link["url"].startswith(f"{auth.auth_url}/connect?ticket=")
    lifetime = datetime.fromisoformat(link["expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < lifetime <= timedelta(hours=24)
    ticket = parse_qs(urlsplit(link["url"]).query)["ticket"][0]
    assert ticket.encode() not in str(_raw_tickets(auth)).encode()  # only its hash is kept

    assert _sign_in_via(auth, standin, link["url"], address).status_code == 200
    [mailbox] = _mailboxes(auth)
    assert mailbox["erp_reference"] == "CUST-1"
    _refused(open_link(link["url"])[1], "bad_ticket")

    standin.identity.control.revoke_user(address)
    with psycopg.connect(auth.env["BANDEJA_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE mailbox_tokens SET refresh_due_at = now()")
        conn.execute("NOTIFY bandeja_token_refresh")
    wait_until(lambda: _events(auth, "bandeja.mailbox.reauth_needed"), 20, what="reauth_needed")
    deleted = requests.delete(
        f"{auth.auth_url}/api/mailboxes/{mailbox['id']}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert deleted.status_code == 200
    for event_type in ("connected", "reauth_needed", "disconnected"):
        [event] = _events(auth, f"bandeja.mailbox.{event_type}")
        assert event["data"]["reference"] == "CUST-1", event_type

    auth.stop()
    short = start_auth(BANDEJA_CONNECT_TICKET_TTL="1")
    late = mint_connect_link(short.auth_url, new_address(tenant, "late"), "CUST-2")
    time.sleep(2)
    _refused(open_link(late["url"])[1], "bad_ticket")


def _raw_tickets(auth: Services) -> list[dict[str, Any]]:
    return query(auth.env["BANDEJA_DATABASE_URL"], "SELECT * FROM connect_tickets")


def test_a_disconnected_mailbox_comes_back_only_through_a_newer_link(
    auth: Services, standin: StandIn, tenant: dict
) -> None:
    """After an administrator's disconnection, neither a bare connect nor a link minted
    before it (unused) reconnects the mailbox, even with the owner's own sign-in; a link
    minted afterwards does, with its new reference."""
    address = new_address(tenant, "gone")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    first = mint_connect_link(auth.auth_url, address, "CUST-OLD")
    spare = mint_connect_link(auth.auth_url, address, "CUST-OLD")
    assert _sign_in_via(auth, standin, first["url"], address).status_code == 200
    [mailbox] = _mailboxes(auth)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    deleted = requests.delete(
        f"{auth.auth_url}/api/mailboxes/{mailbox['id']}", headers=admin, timeout=10
    )
    assert deleted.status_code == 200

    bare = f"{auth.auth_url}/connect?login_hint={address}"
    _refused(open_link(bare)[1], "mailbox_disconnected")
    _refused(open_link(spare["url"])[1], "mailbox_disconnected")
    assert _mailboxes(auth)[0]["state"] == "disconnected"

    fresh = mint_connect_link(auth.auth_url, address, "CUST-NEW")
    assert _sign_in_via(auth, standin, fresh["url"], address).status_code == 200
    [back] = _mailboxes(auth)
    assert (back["id"], back["state"], back["erp_reference"]) == (
        mailbox["id"],
        "active",
        "CUST-NEW",
    )


def test_with_tickets_required_a_bare_connect_is_refused_but_a_reauth_link_works(
    start_auth: StartAuth, standin: StandIn, tenant: dict
) -> None:
    """BANDEJA_CONNECT_REQUIRES_TICKET: a bare /connect is refused with a clear page and
    connects nothing; a ticket link connects an address with ``+``; once its grant is
    revoked, the ``reconnect_url`` of its reauth_needed event (URL-encoded) takes the same
    person through sign-in and back to active."""
    auth = start_auth(BANDEJA_CONNECT_REQUIRES_TICKET="true")
    stranger = new_address(tenant, "stranger")
    standin.identity.control.create_user(stranger, tenant=tenant["id"])
    page = open_link(f"{auth.auth_url}/connect?login_hint={stranger}")[1]
    _refused(page, "ticket_required")
    assert "enlace personal" in page.text
    _refused(open_link(f"{auth.auth_url}/connect")[1], "ticket_required")

    address = f"facturas+{time.monotonic_ns()}@{tenant['domain']}"
    standin.identity.control.create_user(address, tenant=tenant["id"])
    link = mint_connect_link(auth.auth_url, address, "CUST-PLUS")
    assert _sign_in_via(auth, standin, link["url"], address).status_code == 200

    standin.identity.control.revoke_user(address)
    with psycopg.connect(auth.env["BANDEJA_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE mailbox_tokens SET refresh_due_at = now()")
        conn.execute("NOTIFY bandeja_token_refresh")
    [event] = wait_until(
        lambda: _events(auth, "bandeja.mailbox.reauth_needed"), 20, what="reauth_needed"
    )
    reconnect_url = event["data"]["reconnect_url"]
    assert "%2B" in reconnect_url
    assert "+" not in reconnect_url
    page = _sign_in_via(auth, standin, reconnect_url, address)
    assert page.status_code == 200, page.text
    [mailbox] = _mailboxes(auth)
    assert (mailbox["address"], mailbox["state"]) == (address, "active")


def test_only_allowed_tenants_sign_in(
    start_auth: StartAuth, standin: StandIn, tenant: dict
) -> None:
    """BANDEJA_ALLOWED_TENANTS: a user of another tenant is refused with a clear page and
    nothing is stored; a user of the listed tenant connects."""
    auth = start_auth(BANDEJA_ALLOWED_TENANTS=f" {tenant['id'].upper()} ")
    outsider_tenant = standin.identity.control.create_tenant(f"out{time.monotonic_ns()}.example")
    outsider = new_address(outsider_tenant, "outsider")
    standin.identity.control.create_user(outsider, tenant=outsider_tenant["id"])
    page = connect_mailbox(auth.auth_url, standin, outsider)
    _refused(page, "tenant_not_allowed")
    assert "no pueden conectarse" in page.text
    assert _mailboxes(auth) == []

    insider = new_address(tenant, "insider")
    standin.identity.control.create_user(insider, tenant=tenant["id"])
    assert connect_mailbox(auth.auth_url, standin, insider).status_code == 200
