"""Publishes CloudEvents to the topic exchange with publisher confirms (plain pika).

Events are published ``mandatory``: should neither an ERP queue nor the alternate exchange
take one (the policy is missing and nobody is bound yet), RabbitMQ returns it and the
relay keeps it in the outbox instead of RabbitMQ dropping it.

A refusal that retrying cannot fix (no permission, an inequivalent or oversized message,
nowhere to route it) raises :class:`PublishRefused`; an outage raises
:class:`ServiceUnavailable`.
"""

from __future__ import annotations

import json
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from common.broker import tuned_url
from common.errors import ServiceUnavailable
from common.events import EXCHANGE
from services.relay.topology import declare_topology

CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"

# AMQP 0-9-1 reply codes (https://www.rabbitmq.com/amqp-0-9-1-reference#constants) that
# name a fault in permissions, declarations or the message itself: the same publish
# fails the same way until an operator acts.
REFUSAL_REASONS = {
    403: "access_refused",
    406: "precondition_failed",
    530: "not_allowed",
}
UNROUTABLE = "unroutable"
_ACCESS_ERRORS = (
    pika.exceptions.ProbableAccessDeniedError,
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.AuthenticationError,
)


class PublishRefused(ServiceUnavailable):
    """The broker refused a publish for a reason retrying cannot fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _refusal(exc: pika.exceptions.AMQPError) -> PublishRefused | None:
    if isinstance(exc, pika.exceptions.UnroutableError):
        return PublishRefused(UNROUTABLE, "no queue is bound for it and no alternate exchange")
    if isinstance(exc, _ACCESS_ERRORS):
        return PublishRefused("access_refused", type(exc).__name__)
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker) and exc.reply_code in REFUSAL_REASONS:
        return PublishRefused(REFUSAL_REASONS[exc.reply_code], exc.reply_text)
    return None


class EventPublisher:
    def __init__(self, broker_url: str) -> None:
        self._url = tuned_url(broker_url)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def connect(self) -> None:
        """Connect and declare the topology unless already connected. Called at start and
        on every loop of the relay, so the topology is back soon after a broker restart
        even when there is nothing to publish."""
        try:
            self._ensure_channel()
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise _refusal(exc) or ServiceUnavailable(
                f"broker unavailable: {type(exc).__name__}"
            ) from exc

    def keep_alive(self) -> None:
        """Serve heartbeats on an idle connection and notice a lost one (then reconnect)."""
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.process_data_events(0)
            except pika.exceptions.AMQPError:
                self.close()
        self.connect()

    def _ensure_channel(self) -> BlockingChannel:
        if self._channel is None or self._channel.is_closed:
            self.close()
            connection = pika.BlockingConnection(pika.URLParameters(self._url))
            self._connection = connection
            declare_topology(connection.channel)
            self._channel = connection.channel()
            self._channel.confirm_delivery()
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
                mandatory=True,
            )
        except pika.exceptions.AMQPError as exc:
            refusal = _refusal(exc)
            if not isinstance(exc, pika.exceptions.UnroutableError):
                self.close()  # the channel is gone; a returned message leaves it open
            raise refusal or ServiceUnavailable(f"publish failed: {type(exc).__name__}") from exc

    def close(self) -> None:
        if self._connection is not None:
            try:
                if self._connection.is_open:
                    self._connection.close()
            except pika.exceptions.AMQPError:
                pass
        self._connection = None
        self._channel = None
