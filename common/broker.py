"""The one place that builds the dramatiq broker (RabbitMQ over pika).

Call :func:`setup_broker` before importing any actor module: ``@dramatiq.actor`` binds to
the global broker at decoration time (docs/architecture.md#ops-dramatiq-broker).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import AgeLimit, CurrentMessage

from common.middleware import LogContext, TraceContext, WorkerMetrics
from common.publishing import PublishingThreadBroker

# pika's defaults block forever on a broker alarm and give up after one connection
# attempt (docs/architecture.md#ops-dramatiq-broker); these make a publisher fail fast and
# reconnect instead.
_CONNECTION_DEFAULTS = {
    "heartbeat": "30",
    "blocked_connection_timeout": "30",
    "connection_attempts": "3",
    "retry_delay": "2",
    "socket_timeout": "10",
}

FETCH_QUEUE = "fetch"
PROCESS_QUEUE = "process"
WORKER_QUEUES = (FETCH_QUEUE, PROCESS_QUEUE)

# Actor names are a contract between services: one sends by name (``send``) what another
# declares with ``@dramatiq.actor(actor_name=...)``, and messages already queued keep them
# across releases.
FETCH_MAILBOX_ACTOR = "fetch_mailbox"  # on FETCH_QUEUE: (mailbox_id)
PROCESS_MESSAGES_ACTOR = "process_messages"  # on PROCESS_QUEUE: (raw_ids), one fetch batch
PROCESS_MESSAGE_ACTOR = "process_message"  # on PROCESS_QUEUE: (raw_id), operators' re-drives
# on PROCESS_QUEUE: sent by dramatiq's Retries middleware for a message out of retries
SETTLE_EXHAUSTED_ACTOR = "settle_exhausted_processing"


def tuned_url(url: str) -> str:
    """Add the connection defaults to an AMQP URL unless the operator set them."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for key, value in _CONNECTION_DEFAULTS.items():
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def setup_broker(broker_url: str) -> RabbitmqBroker:
    """Build the broker with publisher confirms and our middleware, and make it global.

    Its publishes go through one thread per process that keeps the connection's heartbeats
    (common/publishing.py)."""
    broker = PublishingThreadBroker(url=tuned_url(broker_url), confirm_delivery=True)
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(LogContext())
    # First in the list so that its after_* hooks run last, once Retries has decided
    # whether a failed message is retried or dead-lettered.
    broker.add_middleware(WorkerMetrics(), before=AgeLimit)
    # Before Retries too, so that Retries' own sends (a retry, the settling message) still
    # happen inside the message's span and carry its trace.
    broker.add_middleware(TraceContext(), before=AgeLimit)
    dramatiq.set_broker(broker)
    return broker


def send(queue: str, actor_name: str, *args: Any, delay_ms: int | None = None) -> None:
    """Enqueue a message for an actor another service owns, without importing its code.

    Messages carry ids only (claim check); the broker's confirm makes this return only
    once RabbitMQ has persisted it.
    """
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue, actor_name=actor_name, args=args, kwargs={}, options={}
    )
    dramatiq.get_broker().enqueue(message, delay=delay_ms)
