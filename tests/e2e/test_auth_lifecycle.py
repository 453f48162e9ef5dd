"""The token lifecycle against the emulator, Dovecot and the real services (issue 3)."""

from __future__ import annotations

import time

import psycopg
import requests
from cryptography.fernet import Fernet

from common.db import TOKEN_REFRESH_CHANNEL
from standin.testing import StandIn
from tests.support.events import EventConsumer
from tests.support.flows import connect_mailbox, connect_new_mailbox
from tests.support.mail import invoice_mail
from tests.support.services import ADMIN_TOKEN, Services
from tests.support.waiting import metric_value, query, wait_until


def _state(services: Services, address: str) -> str | None:
    listing = services.admin_get("/api/mailboxes").json()
    return next((m["state"] for m in listing if m["address"] == address), None)


def _connected(standin: StandIn, services: Services, tenant: dict, name: str = "user") -> str:
    return connect_new_mailbox(standin, services.auth_url, tenant, name)


def test_revoked_grant_moves_mailbox_to_needs_reauth_once(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """Revocation → IMAP refuses the token → one forced refresh fails with AADSTS50173 →
    ``needs_reauth`` with exactly one ``reauth_needed`` event, and fetchers skip it."""
    address = _connected(standin, services, tenant, "revoked")
    wait_until(
        lambda: query(
            services.env["BANDEJA_DATABASE_URL"],
            "SELECT 1 FROM mailboxes WHERE last_fetch_at IS NOT NULL",
        ),
        20,
        what="first fetch",
    )
    standin.identity.control.revoke_user(address)
    events = erp_consumer.wait_for("bandeja.mailbox.reauth_needed", 1, timeout=40)
    assert _state(services, address) == "needs_reauth"
    data = events[0]["data"]
    assert data["mailbox"] == address
    assert data["reason"] == {"class": "reauth", "error": "grant_revoked", "aadsts": 50173}
    assert data["message"]["es"]
    assert data["message"]["en"]
    assert data["reconnect_url"].startswith(f"{services.auth_url}/connect?login_hint=")

    logins_before = standin.identity.control.stats()["introspection"]
    time.sleep(6)  # three poll intervals: nothing may log in for this mailbox any more
    erp_consumer.drain()
    assert len(erp_consumer.of_type("bandeja.mailbox.reauth_needed")) == 1
    assert standin.identity.control.stats()["introspection"] == logins_before
    assert (
        metric_value(f"{services.auth_url}/metrics", "bandeja_mailboxes", {"state": "needs_reauth"})
        == 1
    )


def test_reconnect_returns_to_active_and_fetches_mail_that_waited(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """After re-authorization the same mailbox is active again, emits ``connected``, and
    the mail that arrived while it waited becomes documents."""
    address = _connected(standin, services, tenant, "reconnect")
    standin.identity.control.revoke_user(address)
    standin.identity.control.expire_access_tokens(address)
    erp_consumer.wait_for("bandeja.mailbox.reauth_needed", 1, timeout=40)
    raw, _ = invoice_mail(1, to=address)
    standin.dovecot.append(address, raw)
    time.sleep(3)
    assert query(services.env["BANDEJA_DATABASE_URL"], "SELECT id FROM raw_messages") == []

    page = connect_mailbox(services.auth_url, standin, address)
    assert page.status_code == 200, page.text
    assert _state(services, address) == "active"
    assert len(erp_consumer.wait_for("bandeja.mailbox.connected", 2, timeout=20)) == 2
    erp_consumer.wait_for("bandeja.document.processed", 1, timeout=30)
    ids = query(services.env["BANDEJA_DATABASE_URL"], "SELECT id FROM mailboxes")
    assert len(ids) == 1  # the same mailbox row, not a second one


def test_refresh_token_expired_by_inactivity(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """AADSTS700082 (refresh token inactive for 90 days) asks the person to reconnect."""
    address = _connected(standin, services, tenant, "inactive")
    standin.identity.control.expire_refresh_tokens(address)
    standin.identity.control.expire_access_tokens(address)
    event = erp_consumer.wait_for("bandeja.mailbox.reauth_needed", 1, timeout=40)[0]
    assert event["data"]["reason"]["aadsts"] == 700082
    assert event["data"]["reason"]["error"] == "refresh_token_expired"


def test_invalid_client_secret_is_one_global_signal(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """A rejected client secret (AADSTS7000215) flips one global metric; no mailbox changes
    state and no reauth event is emitted for any of them."""
    addresses = [_connected(standin, services, tenant, f"cfg{i}") for i in range(3)]
    from tests.support.services import CLIENT_ID, CLIENT_SECRET

    standin.identity.control.rotate_secret(CLIENT_ID, "a-new-secret-we-do-not-have")
    try:
        for address in addresses:
            standin.identity.control.expire_access_tokens(address)
        metrics_url = f"{services.auth_url}/metrics"
        wait_until(
            lambda: metric_value(metrics_url, "bandeja_client_secret_valid") == 0,
            40,
            what="client secret flagged invalid",
        )
        assert (
            metric_value(
                metrics_url, "bandeja_client_credential_errors_total", {"reason": "invalid_secret"}
            )
            >= 1
        )
        time.sleep(3)
        assert {_state(services, a) for a in addresses} == {"active"}
        erp_consumer.drain()
        assert erp_consumer.of_type("bandeja.mailbox.reauth_needed") == []
    finally:
        standin.identity.control.rotate_secret(CLIENT_ID, CLIENT_SECRET)


def test_throttled_token_endpoint_changes_no_state_and_honours_retry_after(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """A 429 storm with Retry-After: mailboxes stay active, and auth calls the token
    endpoint no more often than Retry-After allows."""
    addresses = [_connected(standin, services, tenant, f"busy{i}") for i in range(3)]
    control = standin.identity.control
    control.inject_failure(429, count=1000, retry_after=4)
    try:
        control.reset_stats()
        for address in addresses:
            control.expire_access_tokens(address)
        time.sleep(12)
        refresh_calls = control.stats()["grants"].get("refresh_token", 0)
        # One call opens the storm; after that at most one per Retry-After window (12 s / 4 s),
        # plus one for each window edge.
        assert refresh_calls <= 5, refresh_calls
        assert {_state(services, a) for a in addresses} == {"active"}
        erp_consumer.drain()
        assert erp_consumer.of_type("bandeja.mailbox.reauth_needed") == []
    finally:
        control.clear_failures()
    # Once the storm passes the tokens are refreshed and mail flows again.
    raw, _ = invoice_mail(7, to=addresses[0])
    standin.dovecot.append(addresses[0], raw)
    erp_consumer.wait_for("bandeja.document.processed", 1, timeout=60)


def test_disconnect_deletes_tokens_and_stops_fetching(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """DELETE /api/mailboxes/{id}: tokens gone, state ``disconnected``, an event, no fetch."""
    address = _connected(standin, services, tenant, "bye")
    mailbox_id = next(
        m["id"] for m in services.admin_get("/api/mailboxes").json() if m["address"] == address
    )
    response = requests.delete(
        f"{services.auth_url}/api/mailboxes/{mailbox_id}",
        timeout=10,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 200
    event = erp_consumer.wait_for("bandeja.mailbox.disconnected", 1, timeout=20)[0]
    assert event["data"]["mailbox_id"] == mailbox_id
    dsn = services.env["BANDEJA_DATABASE_URL"]
    assert query(dsn, "SELECT 1 FROM mailbox_tokens WHERE mailbox_id = %s", mailbox_id) == []
    raw, _ = invoice_mail(3, to=address)
    standin.dovecot.append(address, raw)
    time.sleep(5)
    assert query(dsn, "SELECT 1 FROM raw_messages") == []
    assert _state(services, address) == "disconnected"


def _mailbox_ids(services: Services, addresses: list[str]) -> list[int]:
    listing = {m["address"]: m["id"] for m in services.admin_get("/api/mailboxes").json()}
    return [listing[a] for a in addresses]


def _refreshed(dsn: str, mailbox_id: int) -> bool:
    return bool(
        query(
            dsn,
            "SELECT 1 FROM mailbox_tokens WHERE mailbox_id = %s AND last_refresh_at IS NOT NULL",
            mailbox_id,
        )
    )


def _make_due(dsn: str, first: int) -> None:
    """Every token due now, ``first`` ahead of the others: it heads the refresh batch."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE mailbox_tokens SET refresh_due_at = now()"
            " - CASE WHEN mailbox_id = %s THEN interval '1 minute' ELSE interval '0' END",
            (first,),
        )
        conn.execute(f"NOTIFY {TOKEN_REFRESH_CHANNEL}")


def test_an_undecryptable_token_marks_its_mailbox_and_the_batch_goes_on(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """A token sealed with a key no longer configured, at the head of the refresh batch:
    that mailbox goes to ``error`` (reason, metric, one event) and the mailboxes behind it
    are refreshed at once, not after the batch's 120 s lease."""
    addresses = [_connected(standin, services, tenant, f"sealed{i}") for i in range(3)]
    broken, *others = _mailbox_ids(services, addresses)
    dsn = services.env["BANDEJA_DATABASE_URL"]
    foreign = Fernet(Fernet.generate_key())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE mailbox_tokens SET token_cache = %s WHERE mailbox_id = %s",
            (foreign.encrypt(b"{}"), broken),
        )
    _make_due(dsn, broken)
    wait_until(lambda: all(_refreshed(dsn, m) for m in others), 20, what="the others refreshed")
    event = erp_consumer.wait_for("bandeja.mailbox.error", 1, timeout=20)[0]
    assert event["data"]["mailbox_id"] == broken
    assert "cannot be decrypted" in event["data"]["error"]
    [mailbox] = [m for m in services.admin_get("/api/mailboxes").json() if m["id"] == broken]
    assert mailbox["state"] == "error"
    assert mailbox["state_reason"]["error"] == "undecryptable_token"
    assert {_state(services, a) for a in addresses[1:]} == {"active"}
    metrics_url = f"{services.auth_url}/metrics"
    assert metric_value(metrics_url, "bandeja_token_undecryptable_total") == 1
    # Mailbox states reach /metrics through auth's background sampler (every second here).
    wait_until(
        lambda: metric_value(metrics_url, "bandeja_mailboxes", {"state": "error"}) == 1,
        10,
        what="the error state on /metrics",
    )
    assert "refresh_loop_error" not in services.running["auth"].logs()


def test_a_token_endpoint_outage_is_a_transient_failure_of_that_mailbox(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """A 503 with Retry-After (msal raises MsalServiceError for it instead of returning),
    met by the mailbox at the head of the refresh batch: that mailbox is retried no sooner
    than Retry-After, the refresher asks the endpoint nothing until then (Retry-After
    pauses the whole client) and then refreshes both, nobody changes state, and the loop
    itself reports no error."""
    addresses = [_connected(standin, services, tenant, f"outage{i}") for i in range(2)]
    unlucky, lucky = _mailbox_ids(services, addresses)
    dsn = services.env["BANDEJA_DATABASE_URL"]
    control = standin.identity.control
    retry_after = 10
    control.inject_failure(503, count=1, retry_after=retry_after)
    try:
        failed_at = time.time()
        _make_due(dsn, unlucky)
        # Watched as it happens, not after the other mailbox's refresh: once the pause is
        # over both are due again together, and the retry may already have succeeded.
        wait_until(
            lambda: _token(dsn, unlucky)["failure_count"] == 1,
            retry_after,
            interval=0.1,
            what="the failure recorded on the mailbox at the head of the batch",
        )
        assert float(_token(dsn, unlucky)["due"]) >= failed_at + retry_after - 0.5
        assert not _refreshed(dsn, lucky)
    finally:
        control.clear_failures()
    wait_until(lambda: _refreshed(dsn, lucky), retry_after + 20, what="the other mailbox")
    assert float(_token(dsn, lucky)["refreshed"]) >= failed_at + retry_after - 0.5
    wait_until(lambda: _refreshed(dsn, unlucky), 30, what="the retry after the outage")
    assert {_state(services, a) for a in addresses} == {"active"}
    erp_consumer.drain()
    assert erp_consumer.of_type("bandeja.mailbox.reauth_needed") == []
    assert erp_consumer.of_type("bandeja.mailbox.error") == []
    assert "refresh_loop_error" not in services.running["auth"].logs()


def _token(dsn: str, mailbox_id: int) -> dict:
    [row] = query(
        dsn,
        "SELECT failure_count, extract(epoch FROM refresh_due_at) AS due,"
        " extract(epoch FROM last_refresh_at) AS refreshed"
        " FROM mailbox_tokens WHERE mailbox_id = %s",
        mailbox_id,
    )
    return dict(row)


def test_short_lived_tokens_are_refreshed_once_per_lifetime_not_on_every_look(
    standin: StandIn, tenant: dict, services: Services
) -> None:
    """With 10 s access tokens (IDLE and polling both reading them), each mailbox's token
    is refreshed about once per 7-8.5 s of its life: the "too close to expiry" margins
    scale with the lifetime. A fixed 30 s margin asked for a refresh on every look."""
    control = standin.identity.control
    control.set_access_token_lifetime(10)
    try:
        addresses = [_connected(standin, services, tenant, f"short{i}") for i in range(2)]
        time.sleep(2)  # the first fetches and IDLE sessions settle
        control.reset_stats()
        time.sleep(14)
        users = control.stats()["users"]
    finally:
        control.set_access_token_lifetime(3600)
    refreshes = {a: users.get(a, {}).get("refresh_token", 0) for a in addresses}
    # 14 s / (10 s x 0.70..0.85) is 1-2 refreshes; a margin as long as the token made 7.
    assert all(1 <= n <= 3 for n in refreshes.values()), refreshes
