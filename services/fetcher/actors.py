"""The fetcher's dramatiq actors: thin, by id, one call each.

Retries live in the mailbox's schedule, not in the queue: a failed run records its error
and its next attempt on the mailbox row, so nothing waits in ``fetch.DQ`` and a dead
letter means a bug.
"""

from __future__ import annotations

import dramatiq

from common.broker import FETCH_MAILBOX_ACTOR, FETCH_QUEUE
from services.fetcher.fetch import FetchDeps, fetch_mailbox

_deps: FetchDeps | None = None


def bind(deps: FetchDeps) -> None:
    global _deps  # noqa: PLW0603 - actors are module-level by dramatiq's design
    _deps = deps


@dramatiq.actor(
    actor_name=FETCH_MAILBOX_ACTOR,
    queue_name=FETCH_QUEUE,
    max_retries=0,
    time_limit=10 * 60 * 1000,
)
def fetch_mailbox_actor(mailbox_id: int) -> None:
    assert _deps is not None, "services.fetcher.actors.bind() was not called"
    fetch_mailbox(_deps, mailbox_id)
