"""Publishing through a real RabbitMQ (common/publishing.py): a process's publishing
connection stays open while it idles past the heartbeat timeout, every thread's publishes
share it and are confirmed, and a send keeps the caller's trace."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest

from common import broker as common_broker
from common import tracing
from tests.support.infra import TestVhost, rabbitmqctl
from tests.support.waiting import wait_until

QUEUE = "publishing-test"


@pytest.fixture
def own_vhost() -> Iterator[TestVhost]:
    vhost = TestVhost().create()
    yield vhost
    vhost.drop()


@pytest.fixture
def broker(own_vhost: TestVhost) -> Iterator[Any]:
    """The services' broker (setup_broker), negotiating a 1 s heartbeat: RabbitMQ closes a
    connection that stays silent for two of them."""
    previous = dramatiq.get_broker()
    built = common_broker.setup_broker(own_vhost.url + "?heartbeat=1")
    try:
        yield built
    finally:
        built.close()
        dramatiq.set_broker(previous)


def _client_ports(vhost: TestVhost) -> list[str]:
    """The client ports of the connections RabbitMQ holds open in ``vhost``."""
    return sorted(port for (port,) in vhost.connections("peer_port"))


def _send(broker: Any, n: int) -> dramatiq.Message[Any]:
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=QUEUE, actor_name="publishing_test", args=(n,), kwargs={}, options={}
    )
    return broker.enqueue(message)


def _queued(broker: Any) -> int:
    return int(broker.get_queue_message_counts(QUEUE)[0])


def test_an_idle_publishing_connection_outlives_the_heartbeat_timeout(
    broker: Any, own_vhost: TestVhost
) -> None:
    """A worker thread publishes, idles for four heartbeat intervals, publishes again: the
    same connection carries both (before, RabbitMQ had closed it for missed heartbeats, an
    error in its log, and the second publish met a reset)."""
    first = threading.Thread(target=_send, args=(broker, 1))
    first.start()
    first.join()
    before = _client_ports(own_vhost)
    assert len(before) == 1
    time.sleep(4)
    assert _client_ports(own_vhost) == before
    second = threading.Thread(target=_send, args=(broker, 2))
    second.start()
    second.join()
    assert _client_ports(own_vhost) == before
    assert _queued(broker) == 2  # (on a connection of the test's own thread)


def test_an_idle_worker_keeps_every_connection_it_opened(broker: Any, own_vhost: TestVhost) -> None:
    """A dramatiq worker (consumer threads for the queue and its delay queue) idles for
    four heartbeat intervals, then processes a message: RabbitMQ closed none of its
    connections meanwhile (before, each consumer thread left the connection it declared
    its queue on idle, and RabbitMQ closed it for missed heartbeats)."""
    done = threading.Event()
    dramatiq.actor(
        lambda n: done.set(), broker=broker, queue_name=QUEUE, actor_name="publishing_test"
    )
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        time.sleep(1)
        started = _client_ports(own_vhost)
        assert started
        time.sleep(4)
        assert _client_ports(own_vhost) == started
        _send(broker, 1)
        assert done.wait(10)
    finally:
        worker.stop()


def test_a_connection_rabbitmq_closes_while_idle_is_replaced_at_the_next_send(
    broker: Any, own_vhost: TestVhost
) -> None:
    """A broker restart or an operator closing the connection: the publishing thread
    notices while idle, drops it, and the next send opens a new one and is confirmed."""
    _send(broker, 1)
    [port] = _client_ports(own_vhost)
    rabbitmqctl("close_connection", _connection_pid(own_vhost, port), "test: closed while idle")
    wait_until(lambda: _client_ports(own_vhost) == [], timeout=10)
    time.sleep(1)  # the publishing thread's idle wake-ups (a third of the heartbeat) see it
    _send(broker, 2)
    assert _client_ports(own_vhost) not in ([], [port])
    assert _queued(broker) == 2


def _connection_pid(vhost: TestVhost, port: str) -> str:
    [pid] = [pid for peer, pid in vhost.connections("peer_port", "pid") if peer == port]
    return pid


def test_publishes_from_many_threads_share_one_connection_and_are_all_confirmed(
    broker: Any, own_vhost: TestVhost
) -> None:
    threads = [
        threading.Thread(target=lambda t=t: [_send(broker, t * 100 + i) for i in range(25)])
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(_client_ports(own_vhost)) == 1
    assert _queued(broker) == 200  # each enqueue returned after RabbitMQ's confirm


def test_a_send_carries_the_trace_it_was_made_in(
    broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send runs on the publishing thread, in a copy of the caller's context."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracing.setup_tracing("test")
    with tracing.tracer.start_as_current_span("caller") as span:
        sent = _send(broker, 1)
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace_id in sent.options[tracing.TRACEPARENT]


def test_a_publish_that_fails_raises_in_the_caller(own_vhost: TestVhost) -> None:
    """Nothing is swallowed on the publishing thread: a broker that cannot be reached
    fails the caller's send, as it did on the caller's own thread."""
    previous = dramatiq.get_broker()
    unreachable = common_broker.setup_broker(
        "amqp://guest:guest@127.0.0.1:1/?connection_attempts=1&socket_timeout=1"
    )
    try:
        with pytest.raises(dramatiq.errors.BrokerConnectionError):
            _send(unreachable, 1)
    finally:
        unreachable.close()
        dramatiq.set_broker(previous)
