"""The fetcher against Exchange Online's behaviour, through the proxy in front of
Dovecot (standin/exchange, issue 9)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from standin.exchange.server import ExchangeProxy
from standin.testing import StandIn
from tests.conftest import new_address
from tests.support.events import EventConsumer
from tests.support.flows import connect_mailbox, connect_new_mailbox
from tests.support.mail import invoice_mail
from tests.support.services import ServiceProcess, Services, free_port
from tests.support.waiting import metric_value, query, wait_until


@pytest.fixture(scope="module")
def exchange(standin: StandIn) -> Iterator[ExchangeProxy]:
    with ExchangeProxy.for_standin(standin, tls=True) as proxy:
        yield proxy


@pytest.fixture
def exo(exchange: ExchangeProxy) -> Iterator[ExchangeProxy]:
    exchange.faults.reset()
    exchange.stats.reset()
    yield exchange
    exchange.faults.reset()


@pytest.fixture
def start_exo_services(
    start_services: Callable[..., Services], exo: ExchangeProxy
) -> Callable[..., Services]:
    def start(*commands: str, **overrides: str) -> Services:
        return start_services(*commands, imap_port=str(exo.port), **overrides)

    return start


def _connect(standin: StandIn, services: Services, tenant: dict, name: str) -> str:
    return connect_new_mailbox(standin, services.auth_url, tenant, name)


def _documents(services: Services) -> list[dict]:
    return query(services.env["BANDEJA_DATABASE_URL"], "SELECT message_id, state FROM documents")


def test_idle_session_survives_token_expiry(
    standin: StandIn,
    tenant: dict,
    exo: ExchangeProxy,
    start_exo_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """Exchange ends an IDLE session with BYE AccessTokenExpired; the fetcher gets a fresh
    token through auth, re-opens IDLE, and the next mail is processed within seconds,
    without the mailbox ever needing re-authorization."""
    services = start_exo_services(poll_interval="120")
    address = _connect(standin, services, tenant, "idlexp")
    fetcher = services.running["fetcher"]
    wait_until(
        lambda: metric_value(f"{fetcher.ops_url}/metrics", "bandeja_idle_sessions") >= 1,
        30,
        what="an IDLE session",
    )
    time.sleep(1.5)
    standin.identity.control.expire_access_tokens(address)
    wait_until(lambda: exo.stats.byes["token_expired"] >= 1, 20, what="BYE AccessTokenExpired")
    bye_at = time.monotonic()
    wait_until(
        lambda: any(e.verb == "IDLE" and e.at > bye_at for e in exo.stats.events(address)),
        30,
        what="IDLE again, on a session with a fresh token",
    )
    time.sleep(0.5)
    started = time.monotonic()
    standin.dovecot.append(address, invoice_mail(1, to=address)[0])
    erp_consumer.wait_for("bandeja.document.processed", 1, timeout=15)
    assert time.monotonic() - started < 5
    erp_consumer.drain()
    assert erp_consumer.of_type("bandeja.mailbox.reauth_needed") == []
    assert services.admin_get("/api/mailboxes").json()[0]["state"] == "active"


def test_throttled_tenant_waits_at_least_the_suggested_time(
    standin: StandIn,
    tenant: dict,
    exo: ExchangeProxy,
    start_exo_services: Callable[..., Services],
) -> None:
    """``NO Request is throttled. Suggested Backoff Time: 3000 milliseconds``: no command
    of that tenant reaches the server again before 3 s, the metric counts the wait, and
    the mail is fetched afterwards."""
    services = start_exo_services(idle_sessions="0")
    address = _connect(standin, services, tenant, "throttled")
    wait_until(lambda: exo.stats.logins[address] >= 1, 20, what="a first fetch")
    exo.faults.throttle(tenant["domain"], backoff_ms=3000, count=2)
    standin.dovecot.append(address, invoice_mail(1, to=address)[0])
    wait_until(lambda: _documents(services), 40, what="the document after the backoff")
    gaps = exo.stats.backoff_gaps_ms(address)
    assert gaps
    assert all(gap is not None and gap >= 3000 for gap in gaps), gaps
    fetcher = services.running["fetcher"]
    waited = metric_value(f"{fetcher.ops_url}/metrics", "bandeja_imap_throttle_wait_seconds_total")
    assert waited >= 3.0


def test_authenticated_but_not_connected_ends_in_error_after_bounded_retries(
    standin: StandIn,
    tenant: dict,
    exo: ExchangeProxy,
    start_exo_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """``BAD User is authenticated but not connected.`` on every try: a few retries, then
    the mailbox is ``error`` with a clear last_error and one event; no endless retrying."""
    address = new_address(tenant, "noaccess")
    exo.faults.not_connected(address, count=1000)
    services = start_exo_services(idle_sessions="0")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    assert connect_mailbox(services.auth_url, standin, address).status_code == 200
    event = erp_consumer.wait_for("bandeja.mailbox.error", 1, timeout=90)[0]
    assert "not connected" in event["data"]["error"]
    mailbox = services.admin_get("/api/mailboxes").json()[0]
    assert mailbox["state"] == "error"
    assert "not connected" in mailbox["last_error"]
    logins = exo.stats.logins[address]
    time.sleep(5)
    assert exo.stats.logins[address] == logins
    assert logins <= 3


def test_connection_cap_is_never_exceeded_by_one_mailbox(
    standin: StandIn,
    tenant: dict,
    exo: ExchangeProxy,
    start_exo_services: Callable[..., Services],
) -> None:
    """With IDLE and fetches running side by side, one mailbox never holds more than two
    connections, under a cap of two."""
    exo.faults.set_connection_limit(2)
    services = start_exo_services(poll_interval="2")
    address = _connect(standin, services, tenant, "capped")
    for n in range(40):
        standin.dovecot.append(address, invoice_mail(n, to=address)[0])
        time.sleep(0.05)
    wait_until(lambda: len(_documents(services)) >= 40, 90, what="40 documents")
    assert exo.stats.peak_sessions[address] <= 2
    assert exo.stats.refused_over_limit[address] == 0


def test_two_fetchers_never_hold_the_same_mailbox(
    standin: StandIn,
    tenant: dict,
    exo: ExchangeProxy,
    start_exo_services: Callable[..., Services],
) -> None:
    """Two fetcher processes polling the same mailboxes: never two sessions on one mailbox."""
    services = start_exo_services(idle_sessions="0", poll_interval="1")
    second = ServiceProcess("fetcher", services.env, services.log_dir, free_port())
    second.wait_ready()
    try:
        addresses = [_connect(standin, services, tenant, f"shared{i}") for i in range(4)]
        for n in range(10):
            for address in addresses:
                standin.dovecot.append(address, invoice_mail(n, to=address)[0])
            time.sleep(0.3)
        wait_until(lambda: len(_documents(services)) >= 40, 90, what="40 documents")
        time.sleep(3)
        assert {a: exo.stats.peak_sessions[a] for a in addresses} == dict.fromkeys(addresses, 1)
        assert len(_documents(services)) == 40
    finally:
        second.stop()


def test_random_byes_during_a_thousand_mail_drain_lose_and_duplicate_nothing(
    standin: StandIn,
    tenant: dict,
    exo: ExchangeProxy,
    start_exo_services: Callable[..., Services],
) -> None:
    """``* BYE Connection closed. 14`` at random moments while 1,000 mails are drained:
    every mail is exactly one document, and every mail ends \\Seen."""
    services = start_exo_services(idle_sessions="0", poll_interval="1")
    with ThreadPoolExecutor(5) as pool:
        addresses = list(
            pool.map(lambda i: _connect(standin, services, tenant, f"bye{i}"), range(10))
        )
    exo.faults.random_byes(0.03, seed=14)
    expected = set()
    for address in addresses:
        raws = [invoice_mail(n, to=address, pdf_size=300)[0] for n in range(100)]
        standin.dovecot.append_many(address, raws)
        expected.update(raws)
    wait_until(lambda: len(_documents(services)) >= 1000, 300, interval=1, what="1000 documents")
    time.sleep(3)
    docs = _documents(services)
    assert len(docs) == 1000
    assert len({d["message_id"] for d in docs}) == 1000
    assert exo.stats.byes["random"] > 0
    exo.faults.reset()
    assert all(standin.dovecot.unseen_uids(a) == [] for a in addresses)
