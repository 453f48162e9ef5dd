"""The processor's dramatiq actor: thin, by id."""

from __future__ import annotations

import dramatiq

from common.broker import PROCESS_QUEUE
from common.errors import PermanentError
from services.processor.process import ProcessDeps, process_message

_deps: ProcessDeps | None = None


def bind(deps: ProcessDeps) -> None:
    global _deps  # noqa: PLW0603 - actors are module-level by dramatiq's design
    _deps = deps


# Retries cover a database or broker outage (about 10 minutes in all, under RabbitMQ's
# 30-minute consumer_timeout for delayed messages); then the message is dead-lettered
# to process.XQ while its raw bytes stay in raw_messages.
@dramatiq.actor(
    actor_name="process_message",
    queue_name=PROCESS_QUEUE,
    max_retries=8,
    min_backoff=1_000,
    max_backoff=120_000,
    time_limit=2 * 60 * 1000,
    throws=(PermanentError,),
)
def process_message_actor(raw_id: int) -> None:
    assert _deps is not None, "services.processor.actors.bind() was not called"
    process_message(_deps, raw_id)
