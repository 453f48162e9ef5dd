"""Every worker's queue-depth gauges, read from a real RabbitMQ: they follow the queue,
and a broker that goes away only pauses them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pika
import pytest
import structlog

from common.queue_metrics import QUEUE_MESSAGES, QueueDepthMonitor, queues_of
from tests.support.infra import TestVhost
from tests.support.services import free_port
from tests.support.waiting import wait_until


@pytest.fixture
def vhost() -> Iterator[TestVhost]:
    vhost = TestVhost().create()
    yield vhost
    vhost.drop()


def _publish(vhost: TestVhost, queue: str, count: int) -> None:
    with pika.BlockingConnection(pika.URLParameters(vhost.url)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        for _ in range(count):
            channel.basic_publish("", queue, b"{}")


def _watching(monitor: QueueDepthMonitor) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run_forever, args=(stop,), daemon=True)
    thread.start()
    return thread, stop


def test_the_gauges_follow_the_queues_round_after_round(vhost: TestVhost) -> None:
    """A queue's ready messages show in ``bandeja_queue_messages`` and are read again each
    interval; a queue dramatiq has not declared yet reads 0."""
    _publish(vhost, "depth-test", 2)
    ready = QUEUE_MESSAGES.labels("depth-test")
    thread, stop = _watching(QueueDepthMonitor(vhost.url, queues_of("depth-test"), 0.2))
    try:
        wait_until(lambda: ready._value.get() == 2, 10, what="the first reading")
        _publish(vhost, "depth-test", 1)
        wait_until(lambda: ready._value.get() == 3, 10, what="a later reading")
        assert QUEUE_MESSAGES.labels("depth-test.XQ")._value.get() == 0
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_broker_away_is_a_quiet_retry() -> None:
    """With RabbitMQ unreachable the monitor logs at debug level only and keeps trying: the
    readiness probe, not the metrics loop, reports the outage."""
    # One attempt per reading: the retries of a real connection would only slow the test.
    away = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F?connection_attempts=1"
    with structlog.testing.capture_logs() as logs:
        thread, stop = _watching(QueueDepthMonitor(away, queues_of("depth-away"), 0.1))
        try:
            wait_until(
                lambda: sum(e["event"] == "queue_depth_unavailable" for e in logs) >= 2,
                10,
                what="two failed readings",
            )
            assert thread.is_alive()
        finally:
            stop.set()
            thread.join(10)
    assert {e["log_level"] for e in logs} == {"debug"}
