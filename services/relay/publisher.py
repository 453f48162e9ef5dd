"""Publishes CloudEvents to the topic exchange with publisher confirms, pipelined.

A batch is written to the channel at once and then the confirms are awaited together:
RabbitMQ numbers the publishes of a confirm-mode channel 1, 2, 3… and acknowledges them
by that delivery tag, one at a time or several at once (``multiple``)
(https://www.rabbitmq.com/docs/confirms#publisher-confirms; docs/architecture.md#ops-rabbitmq).
pika's BlockingChannel waits for each confirm before the next publish (one round trip
per event), so the publishing channel is pika's asynchronous one (``SelectConnection``),
its I/O loop run here, in the caller's thread, until every publish of the batch is
settled. BENCHMARKS.md ("Relay") has the figures.

Events are published ``mandatory``: should neither an ERP queue nor the alternate exchange
take one (the policy is missing and nobody is bound yet), RabbitMQ returns it and the
relay keeps it in the outbox instead of RabbitMQ dropping it. A returned message is
followed by its ``basic.ack`` (the return comes first, per the page above), so an
acknowledged event is only confirmed if it was not returned.

A refusal that retrying cannot fix (no permission, an inequivalent or oversized message,
nowhere to route it) is :class:`PublishRefused`; a nack :class:`PublishNacked`; an outage
:class:`ServiceUnavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.frame import Method

from common.broker import tuned_url
from common.errors import ServiceUnavailable
from common.events import EXCHANGE
from services.relay.errors import PublishNacked, PublishRefused
from services.relay.topology import declare_topology

__all__ = ["EventPublisher", "PublishOutcome", "PublishRefused"]

CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"

# How long a batch may wait for its confirms, and a connection for its channel, before the
# connection is taken for lost. RabbitMQ confirms persistent messages once they are
# written to disk (fsync batched every few ms), so a healthy broker answers in far less.
CONFIRM_TIMEOUT = 30.0
OPEN_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0

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


def _refusal(exc: BaseException | None) -> PublishRefused | None:
    if isinstance(exc, _ACCESS_ERRORS):
        return PublishRefused("access_refused", type(exc).__name__)
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker) and exc.reply_code in REFUSAL_REASONS:
        return PublishRefused(REFUSAL_REASONS[exc.reply_code], exc.reply_text)
    return None


def _unavailable(what: str, exc: BaseException | None) -> ServiceUnavailable:
    return _refusal(exc) or ServiceUnavailable(f"{what}: {type(exc).__name__}")


@dataclass
class PublishOutcome:
    """A batch's result: the ids RabbitMQ confirmed, and why each other event was not."""

    confirmed: list[str] = field(default_factory=list)
    failed: dict[str, ServiceUnavailable] = field(default_factory=dict)


class PendingConfirms:
    """Delivery-tag bookkeeping for one confirm-mode channel (tags start at 1 on it)."""

    def __init__(self) -> None:
        self._next_tag = 1
        self._unsettled: dict[int, str] = {}
        self._returned: set[str] = set()
        self.outcome = PublishOutcome()

    def sent(self, event_id: str) -> None:
        self._unsettled[self._next_tag] = event_id
        self._next_tag += 1

    def returned(self, event_id: str) -> None:
        self._returned.add(event_id)

    def settle(self, tag: int, *, multiple: bool, acked: bool) -> None:
        tags = [t for t in self._unsettled if t <= tag] if multiple else [tag]
        for settled in tags:
            event_id = self._unsettled.pop(settled, None)
            if event_id is None:
                continue
            if not acked:
                self.outcome.failed[event_id] = PublishNacked("nacked by the broker")
            elif event_id in self._returned:
                self._returned.discard(event_id)
                self.outcome.failed[event_id] = PublishRefused(
                    UNROUTABLE, "no queue is bound for it and no alternate exchange"
                )
            else:
                self.outcome.confirmed.append(event_id)

    @property
    def waiting(self) -> bool:
        return bool(self._unsettled)

    def abandon(self, error: ServiceUnavailable) -> None:
        """The channel is gone: the unsettled events may or may not have arrived; they
        stay in the outbox and go again (the ERP de-duplicates by id)."""
        for event_id in self._unsettled.values():
            self.outcome.failed[event_id] = error
        self._unsettled.clear()

    def take(self) -> PublishOutcome:
        outcome, self.outcome = self.outcome, PublishOutcome()
        return outcome


class EventPublisher:
    def __init__(self, broker_url: str, confirm_timeout: float = CONFIRM_TIMEOUT) -> None:
        self._url = tuned_url(broker_url)
        self._confirm_timeout = confirm_timeout
        self._connection: SelectConnection | None = None
        self._channel: Channel | None = None
        self._confirms = PendingConfirms()
        self._ready = False
        self._lost: BaseException | None = None  # why the channel or connection went away
        self._done: Callable[[], bool] | None = None

    def connect(self) -> None:
        """Connect and declare the topology unless already connected. Called at start and
        on every loop of the relay, so the topology is back soon after a broker restart
        even when there is nothing to publish."""
        if self._ready:
            return
        self.close()
        try:
            self._declare_topology()
            self._open()
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise _unavailable("broker unavailable", exc) from exc
        if not self._ready:
            lost = self._lost
            self.close()
            raise _unavailable("broker unavailable", lost)

    def keep_alive(self) -> None:
        """Serve heartbeats on an idle connection and notice a lost one (then reconnect)."""
        if self._connection is not None and self._ready:
            self._run_until(lambda: False, 0)
        self.connect()

    def publish(self, event: dict[str, Any]) -> None:
        """Return once RabbitMQ confirmed the event persisted; raise otherwise."""
        outcome = self.publish_batch([event])
        if event["id"] in outcome.failed:
            raise outcome.failed[event["id"]]

    def publish_batch(self, events: list[dict[str, Any]]) -> PublishOutcome:
        """Publish every event, then wait until RabbitMQ settled each. Only the ids in
        ``confirmed`` were taken by the broker; every other event is in ``failed``."""
        self.connect()
        assert self._channel is not None
        unsent: list[str] = []
        for event in events:
            if self._lost is not None:
                unsent.append(event["id"])
                continue
            try:
                self._publish(self._channel, event)
            except pika.exceptions.AMQPError as exc:  # the channel closed under the loop
                self._lost = exc
                unsent.append(event["id"])
            else:
                self._confirms.sent(event["id"])
        self._run_until(
            lambda: not self._confirms.waiting or self._lost is not None, self._confirm_timeout
        )
        if self._confirms.waiting or self._lost is not None:
            lost = self._lost
            error = (
                _unavailable("publish failed", lost)
                if lost is not None
                else ServiceUnavailable(f"no confirm within {self._confirm_timeout:g} s")
            )
            self._confirms.abandon(error)
            outcome = self._confirms.take()
            outcome.failed.update(dict.fromkeys(unsent, error))
            self.close()
            return outcome
        return self._confirms.take()

    @staticmethod
    def _publish(channel: Channel, event: dict[str, Any]) -> None:
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

    def close(self) -> None:
        connection = self._connection
        if connection is not None:
            try:
                if not (connection.is_closed or connection.is_closing):
                    connection.close()
                    self._run_until(lambda: connection.is_closed, CLOSE_TIMEOUT)
            except pika.exceptions.AMQPError:
                pass
            connection.ioloop.close()
        self._connection = None
        self._channel = None
        self._confirms = PendingConfirms()
        self._ready = False
        self._lost = None

    # --- the asynchronous connection, driven from here ---------------------------------

    def _declare_topology(self) -> None:
        """Declarations are request/response: a short blocking connection does them."""
        with pika.BlockingConnection(pika.URLParameters(self._url)) as connection:
            declare_topology(connection.channel)

    def _open(self) -> None:
        self._connection = SelectConnection(
            pika.URLParameters(self._url),
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_lost,
            on_close_callback=self._on_lost,
        )
        self._run_until(lambda: self._ready or self._lost is not None, OPEN_TIMEOUT)

    def _run_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Run the connection's I/O loop until ``done()`` or the timeout; the callbacks
        below stop it as soon as ``done()`` holds."""
        if self._connection is None or done():
            return
        ioloop = self._connection.ioloop
        self._done = done
        timer = ioloop.call_later(timeout, ioloop.stop)
        try:
            ioloop.start()
        finally:
            self._done = None
            ioloop.remove_timeout(timer)

    def _check_done(self) -> None:
        if self._done is not None and self._done() and self._connection is not None:
            self._connection.ioloop.stop()

    def _on_connection_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_lost)
        channel.add_on_return_callback(self._on_returned)
        channel.confirm_delivery(ack_nack_callback=self._on_settled, callback=self._on_confirming)

    def _on_confirming(self, _frame: Method) -> None:
        self._ready = True
        self._check_done()

    def _on_returned(
        self, _channel: Channel, _method: Any, properties: pika.BasicProperties, _body: bytes
    ) -> None:
        if properties.message_id is not None:
            self._confirms.returned(properties.message_id)

    def _on_settled(self, frame: Method) -> None:
        method = frame.method
        self._confirms.settle(
            method.delivery_tag,
            multiple=method.multiple,
            acked=isinstance(method, pika.spec.Basic.Ack),
        )
        self._check_done()

    def _on_lost(self, _source: Any, reason: BaseException) -> None:
        self._lost = self._lost or reason
        self._ready = False
        self._check_done()
