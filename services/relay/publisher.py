"""Publishes CloudEvents to the topic exchange with publisher confirms (plain pika).

The exchange has an alternate exchange: an event that no queue is bound for yet lands
in ``bandeja.events.unrouted`` instead of vanishing.
"""

from __future__ import annotations

import json
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from common.broker import tuned_url
from common.errors import ServiceUnavailable
from common.events import EXCHANGE, UNROUTED_EXCHANGE, UNROUTED_QUEUE

CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"


def declare_topology(channel: BlockingChannel) -> None:
    channel.exchange_declare(UNROUTED_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(UNROUTED_QUEUE, durable=True)
    channel.queue_bind(UNROUTED_QUEUE, UNROUTED_EXCHANGE)
    channel.exchange_declare(
        EXCHANGE,
        exchange_type="topic",
        durable=True,
        arguments={"alternate-exchange": UNROUTED_EXCHANGE},
    )


class EventPublisher:
    def __init__(self, broker_url: str) -> None:
        self._url = tuned_url(broker_url)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def _ensure_channel(self) -> BlockingChannel:
        if self._channel is None or self._channel.is_closed:
            self.close()
            self._connection = pika.BlockingConnection(pika.URLParameters(self._url))
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
            declare_topology(self._channel)
        return self._channel

    def publish(self, event: dict[str, Any]) -> None:
        """Return once RabbitMQ confirmed the event persisted; raise otherwise."""
        try:
            channel = self._ensure_channel()
            channel.basic_publish(
                EXCHANGE,
                routing_key=event["type"],
                body=json.dumps(event, separators=(",", ":")).encode(),
                properties=pika.BasicProperties(
                    content_type=CONTENT_TYPE,
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=event["id"],
                    type=event["type"],
                ),
            )
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise ServiceUnavailable(f"publish failed: {type(exc).__name__}") from exc

    def close(self) -> None:
        if self._connection is not None:
            try:
                if self._connection.is_open:
                    self._connection.close()
            except pika.exceptions.AMQPError:
                pass
        self._connection = None
        self._channel = None
