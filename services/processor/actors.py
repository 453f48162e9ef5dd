"""The processor's dramatiq actors: thin, by id."""

from __future__ import annotations

from typing import Any

import dramatiq

from common.broker import PROCESS_QUEUE
from common.errors import PermanentError
from services.processor.process import ProcessDeps, process_messages

_deps: ProcessDeps | None = None

# Retries cover a database or broker outage (about 10 minutes in all, under RabbitMQ's
# 30-minute consumer_timeout for delayed messages); then the message is dead-lettered
# to process.XQ while its raw bytes stay in raw_messages.
_RETRIES: dict[str, Any] = {
    "queue_name": PROCESS_QUEUE,
    "max_retries": 8,
    "min_backoff": 1_000,
    "max_backoff": 120_000,
    "throws": (PermanentError,),
}


def bind(deps: ProcessDeps) -> None:
    global _deps  # noqa: PLW0603 - actors are module-level by dramatiq's design
    _deps = deps


def _bound() -> ProcessDeps:
    assert _deps is not None, "services.processor.actors.bind() was not called"
    return _deps


# What the fetcher sends: the mails one fetch batch stored, written in one transaction.
# A batch (at most 20 mails, 16 MB) parses in a second or two; the 2-minute limit matches
# the pod's termination grace period, so a rollout never cuts a batch short.
@dramatiq.actor(actor_name="process_messages", time_limit=2 * 60 * 1000, **_RETRIES)
def process_messages_actor(raw_ids: list[int]) -> None:
    process_messages(_bound(), raw_ids)


# One mail by id: for an operator re-driving a dead letter, and for messages sent by a
# fetcher of an earlier release during a rolling upgrade.
@dramatiq.actor(actor_name="process_message", time_limit=2 * 60 * 1000, **_RETRIES)
def process_message_actor(raw_id: int) -> None:
    process_messages(_bound(), [raw_id])
