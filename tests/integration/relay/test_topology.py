"""The relay against real RabbitMQ vhosts: whatever state an ERP consumer (or an earlier
release) left `bandeja.events` in, events go out, or the refusal is loud (issue 15)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import psycopg
import pytest
import structlog
from psycopg_pool import ConnectionPool

from common import events
from common.db import create_pool
from common.errors import ServiceUnavailable
from services.relay import relay as relay_module
from services.relay.errors import PublishRefused
from services.relay.publisher import EventPublisher
from services.relay.relay import Relay
from services.relay.topology import EXCHANGE_INEQUIVALENT
from tests.support.infra import TestDatabase, TestVhost, rabbitmqctl
from tests.support.services import free_port
from tests.support.waiting import wait_until


@pytest.fixture
def fresh_vhost() -> Iterator[Callable[..., TestVhost]]:
    """A new, empty vhost per call (no exchange declared yet), dropped after the test."""
    made: list[TestVhost] = []

    def make(**options: Any) -> TestVhost:
        made.append(TestVhost().create(**options))
        return made[-1]

    yield make
    for vhost in made:
        vhost.drop()


@pytest.fixture
def pool(clean_database: TestDatabase) -> Iterator[ConnectionPool]:
    pool = create_pool(clean_database.dsn, name="test-relay", max_size=2)
    yield pool
    pool.close()


def _event(n: int = 0, event_type: str = events.MAILBOX_CONNECTED) -> dict[str, Any]:
    return events.cloud_event(
        event_type,
        event_id=uuid.uuid4(),
        source="urn:test",
        subject=f"mailbox/{n}",
        data={"mailbox_id": n, "mailbox": f"m{n}@x.example", "tenant_id": "t"},
    )


def _channel(vhost: TestVhost) -> pika.adapters.blocking_connection.BlockingChannel:
    return pika.BlockingConnection(pika.URLParameters(vhost.url)).channel()


def _publish_one(vhost: TestVhost) -> dict[str, Any]:
    """Connect a publisher (which declares the topology), publish one event, close."""
    publisher = EventPublisher(vhost.url)
    try:
        publisher.connect()
        event = _event()
        publisher.publish(event)
    finally:
        publisher.close()
    return event


def _bound_queue(vhost: TestVhost, name: str = "erp") -> None:
    """An ERP consumer that comes first and declares the exchange as the README says."""
    channel = _channel(vhost)
    channel.exchange_declare(events.EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, events.EXCHANGE, routing_key="bandeja.#")
    channel.connection.close()


def _messages(vhost: TestVhost, queue: str) -> list[dict[str, Any]]:
    channel = _channel(vhost)
    bodies = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        bodies.append(json.loads(body))
    channel.connection.close()
    return bodies


def test_consumer_declared_exchange_first_and_relay_publishes(
    fresh_vhost: Callable[..., TestVhost],
) -> None:
    """The issue's order: the ERP declares `bandeja.events` (topic, durable) and binds
    before the relay ever ran; the relay's declarations agree and its events arrive."""
    vhost = fresh_vhost()
    _bound_queue(vhost)
    event = _publish_one(vhost)
    assert [e["id"] for e in _messages(vhost, "erp")] == [event["id"]]
    assert EXCHANGE_INEQUIVALENT._value.get() == 0


def test_relay_declares_at_start_and_the_policy_keeps_unbound_events(
    fresh_vhost: Callable[..., TestVhost],
) -> None:
    """Connecting declares the topology before any event exists, so an ERP can bind to
    it; an event nobody is bound for yet lands in `bandeja.events.unrouted` through the
    alternate-exchange policy."""
    vhost = fresh_vhost()
    publisher = EventPublisher(vhost.url)
    try:
        publisher.connect()
        channel = _channel(vhost)
        channel.exchange_declare(events.EXCHANGE, passive=True)  # raises 404 if absent
        channel.connection.close()
        event = _event()
        publisher.publish(event)
    finally:
        publisher.close()
    assert [e["id"] for e in _messages(vhost, events.UNROUTED_QUEUE)] == [event["id"]]


def test_exchange_of_an_earlier_release_is_accepted_as_it_stands(
    fresh_vhost: Callable[..., TestVhost],
) -> None:
    """Earlier releases declared the alternate exchange as an x-argument; an upgraded relay
    publishes to that exchange without complaint."""
    vhost = fresh_vhost(alternate_exchange_policy=False)
    channel = _channel(vhost)
    channel.exchange_declare(events.UNROUTED_EXCHANGE, exchange_type="fanout", durable=True)
    channel.exchange_declare(
        events.EXCHANGE,
        exchange_type="topic",
        durable=True,
        arguments={"alternate-exchange": events.UNROUTED_EXCHANGE},
    )
    channel.connection.close()
    EXCHANGE_INEQUIVALENT.set(1)
    event = _publish_one(vhost)
    assert EXCHANGE_INEQUIVALENT._value.get() == 0
    assert [e["id"] for e in _messages(vhost, events.UNROUTED_QUEUE)] == [event["id"]]


def test_an_inequivalent_exchange_is_used_and_said_so(
    fresh_vhost: Callable[..., TestVhost],
) -> None:
    """Someone declared `bandeja.events` otherwise (here: fanout). The relay does not loop on
    the refused declaration: it publishes to the exchange that exists, logs it once per
    connection and sets `bandeja_events_exchange_inequivalent`."""
    vhost = fresh_vhost()
    channel = _channel(vhost)
    channel.exchange_declare(events.EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare("erp", durable=True)
    channel.queue_bind("erp", events.EXCHANGE)
    channel.connection.close()
    publisher = EventPublisher(vhost.url)
    try:
        with structlog.testing.capture_logs() as logs:
            publisher.connect()
            events_sent = [_event(n) for n in range(3)]
            for event in events_sent:
                publisher.publish(event)
    finally:
        publisher.close()
    assert EXCHANGE_INEQUIVALENT._value.get() == 1
    warnings = [entry for entry in logs if entry["event"] == "events_exchange_inequivalent"]
    assert len(warnings) == 1
    assert "inequivalent arg 'type'" in warnings[0]["broker_said"]
    received = _messages(vhost, "erp")
    assert [e["id"] for e in received] == [e["id"] for e in events_sent]


def _outbox(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT published_at, attempts, last_error FROM outbox ORDER BY created_at"
        ).fetchall()


def test_unroutable_event_stays_in_the_outbox_and_is_counted(
    fresh_vhost: Callable[..., TestVhost],
    clean_database: TestDatabase,
    pool: ConnectionPool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the policy and with no queue bound, RabbitMQ would drop the event. The relay
    publishes `mandatory`: the event stays in the outbox with the reason, each refusal is
    counted (the alert's metric) and logged, and the event goes out once a queue is bound."""
    monkeypatch.setattr(relay_module, "REFUSED_PAUSE", 0.2)
    vhost = fresh_vhost(alternate_exchange_policy=False)
    with psycopg.connect(clean_database.dsn) as conn:
        events.add_to_outbox(conn, _event())
    refused = relay_module.PUBLISH_REFUSED.labels("unroutable")
    before = refused._value.get()
    relay = Relay(pool, clean_database.dsn, EventPublisher(vhost.url))
    stop = threading.Event()
    loop = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    with structlog.testing.capture_logs() as logs:
        loop.start()
        try:
            wait_until(lambda: refused._value.get() >= before + 2, 20, what="two refusals")
            (row,) = _outbox(clean_database.dsn)
            assert row["published_at"] is None
            assert row["attempts"] >= 2
            assert "unroutable" in row["last_error"]

            _bound_queue(vhost)
            wait_until(lambda: _outbox(clean_database.dsn)[0]["published_at"], 20, what="publish")
        finally:
            stop.set()
            loop.join(10)
    assert len(_messages(vhost, "erp")) == 1
    errors = [e for e in logs if e["event"] == "publish_refused"]
    assert errors
    assert {e["log_level"] for e in errors} == {"error"}
    assert {e["reason"] for e in errors} == {"unroutable"}


def test_the_outbox_backlog_is_reported_while_the_broker_is_away(
    clean_database: TestDatabase, pool: ConnectionPool
) -> None:
    """The outbox-age alert reads the relay's backlog gauges: with RabbitMQ unreachable they
    are still refreshed every second or so, and each failed turn is one warning, after
    which the relay tries again instead of stopping."""
    with psycopg.connect(clean_database.dsn) as conn:
        events.add_to_outbox(conn, _event())
    # Nothing listens there; one connection attempt per turn keeps the test short.
    broker_away = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F?connection_attempts=1"
    relay = Relay(pool, clean_database.dsn, EventPublisher(broker_away))
    pending = relay_module.PENDING
    stop = threading.Event()
    loop = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    with structlog.testing.capture_logs() as logs:
        pending.set(-1)
        loop.start()
        try:
            for report in ("first", "second"):
                wait_until(lambda: pending._value.get() == 1, 10, what=f"the {report} report")
                pending.set(-1)
            assert relay_module.OLDEST_AGE._value.get() >= 0
        finally:
            stop.set()
            loop.join(10)
    assert not loop.is_alive()
    failed_turns = [e for e in logs if e["event"] == "relay_error"]
    assert len(failed_turns) >= 2
    assert {e["log_level"] for e in failed_turns} == {"warning"}


def test_publish_without_write_permission_is_a_refusal(
    fresh_vhost: Callable[..., TestVhost], clean_database: TestDatabase, pool: ConnectionPool
) -> None:
    """A permission the broker denies is reported as a refusal (access_refused), not as an
    outage to retry quietly; nothing leaves the outbox."""
    vhost = fresh_vhost()
    rabbitmqctl("set_permissions", "-p", vhost.name, "guest", ".*", "^$", ".*")
    with psycopg.connect(clean_database.dsn) as conn:
        events.add_to_outbox(conn, _event())
    relay = Relay(pool, clean_database.dsn, EventPublisher(vhost.url))
    try:
        with pytest.raises(PublishRefused) as caught:
            relay.relay_batch()
    finally:
        relay._publisher.close()
    assert caught.value.reason == "access_refused"
    assert _outbox(clean_database.dsn)[0]["published_at"] is None


def test_nacked_and_returned_events_in_a_pipelined_batch_stay_unsent(
    fresh_vhost: Callable[..., TestVhost],
    clean_database: TestDatabase,
    pool: ConnectionPool,
) -> None:
    """One batch goes out pipelined. In its middle, RabbitMQ nacks one event (its only queue
    is full and rejects publishes) and returns another (nobody is bound for its type, no
    alternate exchange): those two stay in the outbox with their reason; every event
    around them is delivered and marked published."""
    vhost = fresh_vhost(alternate_exchange_policy=False)
    _bound_queue(vhost)  # bandeja.# → erp
    channel = _channel(vhost)
    channel.queue_declare(
        "full", durable=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    channel.queue_bind("full", events.EXCHANGE, routing_key=events.MAILBOX_ERROR)
    channel.queue_unbind("erp", events.EXCHANGE, routing_key="bandeja.#")
    channel.queue_bind("erp", events.EXCHANGE, routing_key=events.MAILBOX_CONNECTED)
    channel.connection.close()
    batch = [_event(n) for n in range(3)]
    batch.append(_event(3, events.MAILBOX_ERROR))  # nacked: "full" rejects it
    batch += [_event(n) for n in range(4, 7)]
    batch.append(_event(7, events.MAILBOX_DISCONNECTED))  # returned: bound nowhere
    batch += [_event(n) for n in range(8, 11)]
    with psycopg.connect(clean_database.dsn) as conn:
        events.add_all_to_outbox(conn, batch)
    relay = Relay(pool, clean_database.dsn, EventPublisher(vhost.url))
    try:
        with pytest.raises(PublishRefused) as caught:
            relay.relay_batch()
    finally:
        relay._publisher.close()
    assert caught.value.reason == "unroutable"
    with psycopg.connect(clean_database.dsn, row_factory=psycopg.rows.dict_row) as conn:
        rows = conn.execute("SELECT id::text, published_at, last_error FROM outbox").fetchall()
    state = {row["id"]: row for row in rows}
    unsent = {event["id"] for event in batch if state[event["id"]]["published_at"] is None}
    assert unsent == {batch[3]["id"], batch[7]["id"]}
    assert "nacked" in state[batch[3]["id"]]["last_error"]
    assert "unroutable" in state[batch[7]["id"]]["last_error"]
    delivered = [e["id"] for e in _messages(vhost, "erp")]
    assert sorted(delivered) == sorted(e["id"] for i, e in enumerate(batch) if i not in (3, 7))


def _connections(vhost: TestVhost) -> dict[str, str]:
    """The vhost's connections by pid, with their state as RabbitMQ sees it."""
    return dict(vhost.connections("pid", "state"))


def test_events_whose_confirm_never_came_stay_unsent_and_go_after_reconnecting(
    fresh_vhost: Callable[..., TestVhost],
    clean_database: TestDatabase,
    pool: ConnectionPool,
) -> None:
    """The broker drops the relay's connection (an operator, a failover) before the batch's
    confirms come back: nothing of the batch is marked published; the next batch
    reconnects and publishes every event."""
    vhost = fresh_vhost()
    _bound_queue(vhost)
    batch = [_event(n) for n in range(5)]
    with psycopg.connect(clean_database.dsn) as conn:
        events.add_all_to_outbox(conn, batch)
    relay = Relay(pool, clean_database.dsn, EventPublisher(vhost.url))
    try:
        relay._publisher.connect()
        for connection in _connections(vhost):
            rabbitmqctl("close_connection", connection, "test: connection dropped")
        # The broker closes its side at once; the relay only learns it when it publishes.
        wait_until(
            lambda: "running" not in _connections(vhost).values(), 30, what="connection closed"
        )
        with pytest.raises(ServiceUnavailable):
            relay.relay_batch()
        rows = _outbox(clean_database.dsn)
        assert [row["published_at"] for row in rows] == [None] * 5
        assert all(row["last_error"].startswith("publish failed") for row in rows)

        assert relay.relay_batch() == 5
    finally:
        relay._publisher.close()
    assert all(row["published_at"] is not None for row in _outbox(clean_database.dsn))
    assert sorted(e["id"] for e in _messages(vhost, "erp")) == sorted(e["id"] for e in batch)
