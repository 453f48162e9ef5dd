"""Queue depths as metrics, read from RabbitMQ by each worker process.

Dead letters (``*.XQ``) and backlog must be alertable from the services' own /metrics,
without relying on RabbitMQ's per-object exporter being enabled (docs/architecture.md#ops-rabbitmq).
"""

from __future__ import annotations

import threading

import pika
import structlog
from prometheus_client import Gauge

from common.broker import tuned_url
from common.loops import Loop

log = structlog.get_logger(__name__)

QUEUE_MESSAGES = Gauge("bandeja_queue_messages", "Messages ready in a queue", ["queue"])


def queues_of(base: str) -> tuple[str, ...]:
    """A dramatiq queue, its delay queue and its dead-letter queue."""
    return (base, f"{base}.DQ", f"{base}.XQ")


class QueueDepthMonitor:
    def __init__(self, broker_url: str, queues: tuple[str, ...], interval: float = 15.0) -> None:
        self._url = tuned_url(broker_url)
        self._queues = queues
        self._interval = interval
        for queue in queues:
            QUEUE_MESSAGES.labels(queue).set(0)

    def sample(self) -> bool:
        try:
            self._read_depths()
        except pika.exceptions.AMQPError as exc:
            # The broker away: the readiness probe and the broker's own alerts say so.
            log.debug("queue_depth_unavailable", error=type(exc).__name__)
        return False  # one reading per interval, never more

    def _read_depths(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self._url))
        try:
            for queue in self._queues:
                channel = connection.channel()
                try:
                    declared = channel.queue_declare(queue, passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    continue  # not declared yet: dramatiq declares queues lazily
                QUEUE_MESSAGES.labels(queue).set(declared.method.message_count)
                channel.close()
        finally:
            connection.close()

    def run_forever(self, stop: threading.Event) -> None:
        Loop(
            "queue_depth", work=self.sample, idle_wait=self._interval, error_pause=self._interval
        ).run(stop)
