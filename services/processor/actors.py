"""The processor's dramatiq actors: thin, by id."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from common.broker import (
    PROCESS_MESSAGE_ACTOR,
    PROCESS_MESSAGES_ACTOR,
    PROCESS_QUEUE,
    SETTLE_EXHAUSTED_ACTOR,
)
from common.errors import PermanentError
from common.settings import DEFAULT_PROCESS_MAX_RETRIES
from services.processor.process import ProcessDeps, process_messages
from services.processor.settle import exhausted_raw_ids, last_error_type, settle

_deps: ProcessDeps | None = None

# Retries cover a database or broker outage (with the default 8, about 5 minutes of backoff:
# 4.6 on average with dramatiq's jitter, from dramatiq.common.compute_backoff;
# each delay stays under RabbitMQ's 30-minute consumer_timeout for delayed messages).
# Then the message is dead-lettered to process.XQ and its mails are settled (settle.py):
# a last attempt each, else a `failed` document.
_RETRIES: dict[str, Any] = {
    "queue_name": PROCESS_QUEUE,
    "max_retries": DEFAULT_PROCESS_MAX_RETRIES,
    "min_backoff": 1_000,
    "max_backoff": 120_000,
    "throws": (PermanentError,),
    "on_retry_exhausted": SETTLE_EXHAUSTED_ACTOR,
}


def bind(deps: ProcessDeps, *, max_retries: int | None = None) -> None:
    """Give the actors their dependencies; ``max_retries`` (BANDEJA_PROCESS_MAX_RETRIES)
    sets how long processing rides out an outage before its mails are settled."""
    global _deps  # noqa: PLW0603 - actors are module-level by dramatiq's design
    _deps = deps
    if max_retries is not None:
        for actor in (process_messages_actor, process_message_actor):
            actor.options["max_retries"] = max_retries


def _redelivered() -> bool:
    """RabbitMQ's flag: this message was given out before and never acknowledged, which is
    what a processor that died while holding it leaves behind (crashes.py)."""
    message = CurrentMessage.get_current_message()
    return bool(getattr(message, "redelivered", False))


def _bound() -> ProcessDeps:
    assert _deps is not None, "services.processor.actors.bind() was not called"
    return _deps


# What the fetcher sends: the mails one fetch batch stored, written in one transaction.
# A batch (at most BANDEJA_FETCH_BATCH_SIZE mails, 50 by default, and 16 MB) parses in well
# under a second (1-2 ms of CPU per 60 KB mail, 7-8 ms per 1 MB mail); the 2-minute limit matches
# the pod's termination grace period, so a rollout never cuts a batch short.
@dramatiq.actor(actor_name=PROCESS_MESSAGES_ACTOR, time_limit=2 * 60 * 1000, **_RETRIES)
def process_messages_actor(raw_ids: list[int]) -> None:
    process_messages(_bound(), raw_ids, redelivered=_redelivered())


# One mail by id: for an operator re-driving a dead letter, and for messages sent by a
# fetcher of an earlier release during a rolling upgrade.
@dramatiq.actor(actor_name=PROCESS_MESSAGE_ACTOR, time_limit=2 * 60 * 1000, **_RETRIES)
def process_message_actor(raw_id: int) -> None:
    process_messages(_bound(), [raw_id], redelivered=_redelivered())


# Sent by dramatiq's Retries middleware with the dead message and its retry count. Its
# own retries ride out a database outage for about an hour of backoff (settling needs the
# database too); past that it is dead-lettered like any other message (runbooks.md).
@dramatiq.actor(
    actor_name=SETTLE_EXHAUSTED_ACTOR,
    queue_name=PROCESS_QUEUE,
    time_limit=2 * 60 * 1000,
    max_retries=20,
    min_backoff=5_000,
    max_backoff=300_000,
    throws=(PermanentError,),
)
def settle_exhausted_actor(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    try:
        raw_ids = exhausted_raw_ids(message)
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc
    attempts = int(retry_info.get("retries", 0)) + 1
    settle(
        _bound(),
        raw_ids,
        last_error=last_error_type(message),
        attempts=attempts,
        redelivered=_redelivered(),
    )
