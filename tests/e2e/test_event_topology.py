"""The ERP's order of things, with the relay as a process and a broker restart in between
(issue 15): a consumer that declares `bandeja.events` as the docs say, before or after
the relay, never stops the relay publishing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import psycopg
import pytest

from common import events
from services.relay.topology import policy_arguments
from tests.chaos.infra import PrivateRabbit
from tests.support.infra import TestDatabase
from tests.support.services import ServiceProcess, free_port
from tests.support.waiting import metric_value, wait_until


@pytest.fixture
def rabbit(tmp_path: Path) -> Iterator[PrivateRabbit]:
    """A RabbitMQ node of this test alone: it is restarted, the shared one never is."""
    node = PrivateRabbit(tmp_path).start()
    node.ctl(*policy_arguments("/"))
    yield node
    node.stop()


def _declare_and_bind(url: str, queue: str) -> None:
    """What an ERP consumer runs on every (re)connect, exactly as documented."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.exchange_declare(events.EXCHANGE, exchange_type="topic", durable=True)
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(queue, events.EXCHANGE, routing_key="bandeja.#")


def _exchange_exists(url: str) -> bool:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        try:
            connection.channel().exchange_declare(events.EXCHANGE, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            return False
        return True


def _ids_in(url: str, queue: str, seen: set[str]) -> set[str]:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        while True:
            method, props, _body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return seen
            seen.add(props.message_id)


def _add_events(dsn: str, count: int) -> set[str]:
    ids = set()
    with psycopg.connect(dsn) as conn:
        for n in range(count):
            event = events.cloud_event(
                events.MAILBOX_CONNECTED,
                event_id=uuid.uuid4(),
                source="urn:test",
                subject=f"mailbox/{n}",
                data={"mailbox_id": n, "mailbox": f"m{n}@x.example", "tenant_id": "t"},
            )
            events.add_to_outbox(conn, event)
            ids.add(event["id"])
    return ids


def test_consumer_first_then_broker_restart_then_consumer_after_relay(
    rabbit: PrivateRabbit,
    clean_database: TestDatabase,
    services_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Consumer A declares the exchange before the relay ever ran; the relay publishes to
    it. The exchange is then lost and the broker restarted: the relay declares it again
    on its own, before it has anything to publish. Consumer A re-binds, consumer B
    declares as documented after the relay; both get every later event, the relay never
    refused a publish nor found the exchange inequivalent."""
    _declare_and_bind(rabbit.url, "erp-a")
    relay = ServiceProcess(
        "relay", {**services_env, "BANDEJA_BROKER_URL": rabbit.url}, tmp_path, free_port()
    )
    try:
        relay.wait_ready()
        first = _add_events(clean_database.dsn, 3)
        got_a: set[str] = set()
        wait_until(lambda: _ids_in(rabbit.url, "erp-a", got_a) >= first, 30, what="first events")

        with pika.BlockingConnection(pika.URLParameters(rabbit.url)) as connection:
            connection.channel().exchange_delete(events.EXCHANGE)
        rabbit.restart()
        wait_until(lambda: _exchange_exists(rabbit.url), 60, what="the relay to re-declare")

        _declare_and_bind(rabbit.url, "erp-a")
        _declare_and_bind(rabbit.url, "erp-b")
        later = _add_events(clean_database.dsn, 3)
        got_b: set[str] = set()
        wait_until(lambda: _ids_in(rabbit.url, "erp-a", got_a) >= first | later, 30, what="A")
        wait_until(lambda: _ids_in(rabbit.url, "erp-b", got_b) >= later, 30, what="B")
        assert got_b == later

        metrics = f"{relay.ops_url}/metrics"
        assert metric_value(metrics, "bandeja_events_publish_refused_total") == 0
        assert metric_value(metrics, "bandeja_events_exchange_inequivalent") == 0
        assert relay.process.poll() is None
    finally:
        relay.stop()
