"""The exchanges the relay publishes to, declared at start and after every reconnect.

The documented contract is `bandeja.events`: a durable topic exchange with no arguments,
so an ERP consumer that comes first may declare it itself exactly as documented. The
alternate exchange (`bandeja.events.unrouted`, where an event no queue is bound for is
kept) is applied by a RabbitMQ policy, as RabbitMQ recommends over x-arguments
(https://www.rabbitmq.com/docs/ae, https://www.rabbitmq.com/docs/parameters#policies):
a policy can be changed later, an x-argument makes every other declaration inequivalent.

Earlier releases declared the exchange with the `alternate-exchange` x-argument; that
form is accepted as it stands. Any other existing form (another type, not durable, other
arguments) is used as it is, and said so: a log line and `bandeja_events_exchange_inequivalent`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pika
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client import Gauge

from common.events import EXCHANGE, UNROUTED_EXCHANGE, UNROUTED_QUEUE

log = structlog.get_logger(__name__)

PRECONDITION_FAILED = 406

# Shown in docs/runbooks.md and deploy/: what an operator applies once per vhost.
POLICY_NAME = "bandeja-events-alternate-exchange"
POLICY_PATTERN = r"^bandeja\.events$"
POLICY_DEFINITION = {"alternate-exchange": UNROUTED_EXCHANGE}

LEGACY_ARGUMENTS = {"alternate-exchange": UNROUTED_EXCHANGE}

EXCHANGE_INEQUIVALENT = Gauge(
    "bandeja_events_exchange_inequivalent",
    "1 while the relay publishes to an existing bandeja.events whose type, durability or"
    " arguments differ from the documented ones (it was declared by someone else)",
)


def declare_topology(channel_factory: Callable[[], BlockingChannel]) -> None:
    """Declare the unrouted store and `bandeja.events`. A refused declaration closes its
    channel, so each attempt takes a fresh one from ``channel_factory``."""
    channel = channel_factory()
    channel.exchange_declare(UNROUTED_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(UNROUTED_QUEUE, durable=True)
    channel.queue_bind(UNROUTED_QUEUE, UNROUTED_EXCHANGE)
    for arguments in (None, LEGACY_ARGUMENTS):
        try:
            channel.exchange_declare(
                EXCHANGE, exchange_type="topic", durable=True, arguments=arguments
            )
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != PRECONDITION_FAILED:
                raise
            refusal = exc.reply_text
            channel = channel_factory()
        else:
            EXCHANGE_INEQUIVALENT.set(0)
            channel.close()
            return
    # It exists (a passive declare raises 404 otherwise) but not in a form we know.
    channel.exchange_declare(EXCHANGE, passive=True)
    channel.close()
    EXCHANGE_INEQUIVALENT.set(1)
    log.warning(
        "events_exchange_inequivalent",
        exchange=EXCHANGE,
        broker_said=refusal,
        action="publishing to the existing exchange as it is",
    )


def policy_arguments(vhost: str) -> list[str]:
    """`rabbitmqctl` arguments that give `bandeja.events` its alternate exchange
    (docs/runbooks.md; deploy/k8s/base/rabbitmq-policy.yaml is the operator's form)."""
    return [
        "set_policy",
        "-p",
        vhost,
        "--apply-to",
        "exchanges",
        POLICY_NAME,
        POLICY_PATTERN,
        json.dumps(POLICY_DEFINITION, separators=(",", ":")),
    ]
