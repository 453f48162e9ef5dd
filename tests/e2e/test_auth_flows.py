"""Consent flows, callback errors, replicas and key rotation (issue 3)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import requests
from cryptography.fernet import Fernet

from standin.control import sign_in
from standin.testing import StandIn
from tests.conftest import new_address
from tests.support.events import EventConsumer
from tests.support.flows import connect_mailbox, start_sign_in
from tests.support.infra import TestDatabase, TestVhost
from tests.support.mail import invoice_mail
from tests.support.services import ADMIN_TOKEN, ServiceProcess, Services, free_port, service_env
from tests.support.waiting import query, wait_until


def _start_sign_in(services: Services, address: str) -> tuple[requests.Session, str]:
    return start_sign_in(services.auth_url, address)


def test_cancelled_sign_in_ends_on_a_spanish_page_with_a_retry_link(
    standin: StandIn, tenant: dict, services: Services
) -> None:
    """A person who cancels at Microsoft gets a clear page (Spanish by default)."""
    address = new_address(tenant, "cancel")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    browser, authorize = _start_sign_in(services, address)
    callback = sign_in(standin.identity.session(), authorize, address, action="cancel")
    page = browser.get(callback, timeout=15)
    assert page.status_code == 400
    assert 'data-outcome="user_cancelled"' in page.text
    assert "Se canceló el inicio de sesión" in page.text
    assert f"/connect?login_hint={quote(address)}" in page.text
    assert services.admin_get("/api/mailboxes").json() == []


def test_non_admin_without_user_consent_gets_the_admin_consent_link_in_english(
    standin: StandIn, services: Services
) -> None:
    """Consent needs an administrator: the page says so and carries the link to forward."""
    tenant = standin.identity.control.create_tenant(
        f"strict{time.monotonic_ns()}.example", user_consent_allowed=False
    )
    address = new_address(tenant, "employee")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    browser = requests.Session()
    browser.trust_env = False
    start = browser.get(
        f"{services.auth_url}/connect",
        params={"login_hint": address, "lang": "en"},
        allow_redirects=False,
        timeout=15,
    )
    callback = sign_in(standin.identity.session(), start.headers["location"], address)
    page = browser.get(callback, timeout=15)
    assert page.status_code == 400
    assert "An administrator of your organisation must approve the application" in page.text
    assert 'id="admin-consent-url"' in page.text
    assert f"{services.auth_url}/admin-consent" in page.text


def test_forged_and_replayed_state_are_refused(
    standin: StandIn, tenant: dict, services: Services
) -> None:
    """A callback with an unknown state, or a real callback used twice, is refused."""
    forged = requests.get(
        f"{services.auth_url}/oauth/callback", params={"code": "x", "state": "forged"}, timeout=10
    )
    assert forged.status_code == 400
    assert 'data-outcome="bad_state"' in forged.text
    address = new_address(tenant, "replay")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    browser, authorize = _start_sign_in(services, address)
    callback = sign_in(standin.identity.session(), authorize, address)
    assert browser.get(callback, timeout=15).status_code == 200
    replay = browser.get(callback, timeout=15)
    assert replay.status_code == 400
    assert 'data-outcome="bad_state"' in replay.text


def test_admin_consent_then_app_only_shared_mailbox_is_fetched(
    standin: StandIn, services: Services, erp_consumer: EventConsumer
) -> None:
    """An administrator consents for the tenant; a shared mailbox registered through the
    admin API is read with an app-only (client credentials) token, no per-user sign-in."""
    tenant = standin.identity.control.create_tenant(f"shared{time.monotonic_ns()}.example")
    admin = new_address(tenant, "admin")
    standin.identity.control.create_user(admin, tenant=tenant["id"], is_admin=True)
    browser = requests.Session()
    browser.trust_env = False
    start = browser.get(
        f"{services.auth_url}/admin-consent",
        params={"tenant": tenant["id"]},
        allow_redirects=False,
        timeout=15,
    )
    assert start.status_code == 302
    callback = sign_in(standin.identity.session(), start.headers["location"], admin)
    done = browser.get(callback, timeout=15)
    assert done.status_code == 200, done.text
    assert 'data-outcome="admin_consented"' in done.text

    shared = f"facturas{time.monotonic_ns()}@{tenant['domain']}"
    raw, hashes = invoice_mail(5, to=shared)
    standin.dovecot.append(shared, raw)
    registered = requests.post(
        f"{services.auth_url}/api/mailboxes",
        json={"address": shared, "tenant_id": tenant["id"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=15,
    )
    assert registered.status_code == 201, registered.text
    event = erp_consumer.wait_for("bandeja.document.processed", 1, timeout=40)[0]
    assert event["data"]["mailbox"] == shared
    assert {a["sha256"] for a in event["data"]["attachments"]} == set(hashes.values())
    grants = standin.identity.control.stats()["grants"]
    assert grants.get("client_credentials", 0) >= 1


def test_app_only_registration_refused_without_admin_consent(
    standin: StandIn, tenant: dict, services: Services
) -> None:
    """A tenant that never consented cannot get app-only mailboxes."""
    answer = requests.post(
        f"{services.auth_url}/api/mailboxes",
        json={"address": f"x@{tenant['domain']}", "tenant_id": tenant["id"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=15,
    )
    assert answer.status_code == 409
    assert "admin_consent_url" in answer.json()


def test_two_auth_replicas_refresh_each_token_once(
    standin: StandIn,
    tenant: dict,
    clean_database: TestDatabase,
    vhost: TestVhost,
    auth_port: int,
    tmp_path: Path,
) -> None:
    """Two auth processes woken at the same instant refresh every token exactly once."""
    env = service_env(
        database_url=clean_database.dsn,
        broker_url=vhost.url,
        standin=standin,
        http_port=auth_port,
        token_keys=Fernet.generate_key().decode(),
    )
    first = Services(env, tmp_path).start("auth")
    second_env = {**env, "BANDEJA_HTTP_PORT": str(free_port())}
    second = ServiceProcess("auth", second_env, tmp_path, int(second_env["BANDEJA_HTTP_PORT"]))
    try:
        second.wait_ready()
        addresses = []
        for i in range(6):
            address = new_address(tenant, f"replica{i}")
            standin.identity.control.create_user(address, tenant=tenant["id"])
            assert connect_mailbox(first.auth_url, standin, address).status_code == 200
            addresses.append(address)
        standin.identity.control.reset_stats()
        for _ in range(3):
            with psycopg.connect(clean_database.dsn, autocommit=True) as conn:
                conn.execute("UPDATE mailbox_tokens SET refresh_due_at = now()")
                conn.execute("NOTIFY bandeja_token_refresh")
            time.sleep(3)
        users = standin.identity.control.stats()["users"]
        refreshes = {a: users.get(a, {}).get("refresh_token", 0) for a in addresses}
        assert refreshes == dict.fromkeys(addresses, 3)
    finally:
        second.stop()
        first.stop()


def test_rotate_keys_reencrypts_every_token(
    standin: StandIn,
    tenant: dict,
    clean_database: TestDatabase,
    vhost: TestVhost,
    auth_port: int,
    tmp_path: Path,
    erp_consumer: EventConsumer,
) -> None:
    """``bandeja rotate-keys`` re-encrypts with the newest key every stored token, a paused
    mailbox's (which the refresh loop never touches) included; the old key can then go."""
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    env = service_env(
        database_url=clean_database.dsn,
        broker_url=vhost.url,
        standin=standin,
        http_port=auth_port,
        token_keys=old_key,
    )
    services = Services(env, tmp_path).start("auth")
    address = new_address(tenant, "rotate")
    paused = new_address(tenant, "paused")
    for each in (address, paused):
        standin.identity.control.create_user(each, tenant=tenant["id"])
        assert connect_mailbox(services.auth_url, standin, each).status_code == 200
    paused_id = next(
        m["id"] for m in services.admin_get("/api/mailboxes").json() if m["address"] == paused
    )
    pause = requests.patch(
        f"{services.auth_url}/api/mailboxes/{paused_id}",
        json={"state": "paused"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert pause.status_code == 200, pause.text
    services.stop()

    rotation_env = {**env, "BANDEJA_TOKEN_KEYS": f"{new_key},{old_key}"}
    rotation = ServiceProcess("rotate-keys", rotation_env, tmp_path, free_port())
    assert rotation.process.wait(60) == 0, rotation.logs()
    rows = query(clean_database.dsn, "SELECT token_cache, access_token FROM mailbox_tokens")
    assert len(rows) == 2
    for row in rows:
        for column in ("token_cache", "access_token"):
            Fernet(new_key.encode()).decrypt(bytes(row[column]))  # raises if not re-encrypted

    only_new = Services({**env, "BANDEJA_TOKEN_KEYS": new_key}, tmp_path).start()
    try:
        raw, _ = invoice_mail(9, to=address)
        standin.dovecot.append(address, raw)
        erp_consumer.wait_for("bandeja.document.processed", 1, timeout=40)
        with psycopg.connect(clean_database.dsn, autocommit=True) as conn:
            conn.execute("UPDATE mailbox_tokens SET refresh_due_at = now()")
        wait_until(
            lambda: query(
                clean_database.dsn,
                "SELECT 1 FROM mailbox_tokens WHERE last_refresh_at IS NOT NULL",
            ),
            20,
            what="a refresh with the new key only",
        )
        resume = requests.patch(
            f"{only_new.auth_url}/api/mailboxes/{paused_id}",
            json={"state": "active"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert resume.status_code == 200, resume.text
        with psycopg.connect(clean_database.dsn, autocommit=True) as conn:
            conn.execute("UPDATE mailbox_tokens SET refresh_due_at = now()")
            conn.execute("NOTIFY bandeja_token_refresh")
        wait_until(
            lambda: query(
                clean_database.dsn,
                "SELECT 1 FROM mailbox_tokens WHERE mailbox_id = %s"
                " AND last_refresh_at IS NOT NULL",
                paused_id,
            ),
            20,
            what="the resumed mailbox refreshed with the new key only",
        )
        assert "token_undecryptable" not in only_new.running["auth"].logs()
    finally:
        only_new.stop()


def test_signing_in_as_another_account_connects_nothing(
    standin: StandIn, tenant: dict, services: Services
) -> None:
    """Asked to connect one mailbox but signed in as another: refused with a clear page,
    and no mailbox is created for either."""
    wanted = new_address(tenant, "wanted")
    other = new_address(tenant, "other")
    for address in (wanted, other):
        standin.identity.control.create_user(address, tenant=tenant["id"])
    browser, authorize = _start_sign_in(services, wanted)
    callback = sign_in(standin.identity.session(), authorize, other)
    page = browser.get(callback, timeout=15)
    assert page.status_code == 400
    assert 'data-outcome="wrong_account"' in page.text
    assert services.admin_get("/api/mailboxes").json() == []
