"""One shape for a service's background loops: heartbeat, one unit of work, wait, and one
answer to an error.

Each turn beats the heartbeat (the liveness probe sees a loop that stopped turning), does
one unit of work, then waits: not at all when the work says more is pending, ``seconds``
when it answers ``Pause(seconds)`` (a failure it handled itself that waits on a person, a
throttle), else until a wake-up (a LISTEN/NOTIFY hint) or ``idle_wait`` seconds. An error
is logged once, at the loop's level, and pauses the loop ``error_pause`` seconds (instead
of the idle wait), so a database or broker that went away is retried, not spun on. A stop
ends the loop between turns and cuts its waits short.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog
from psycopg_pool import PoolClosed

from common.health import Heartbeat

log = structlog.get_logger(__name__)

LogLevel = Literal["debug", "info", "warning", "error"]

# Enough of an error's text to tell one outage from another without flooding the log.
ERROR_TEXT_LIMIT = 200


@dataclass(frozen=True)
class Pause:
    """A work result: wait this long before the next turn, whatever wakes the loop."""

    seconds: float


@dataclass(frozen=True)
class Loop:
    name: str
    # One unit of work; True when more is waiting now (turn again without waiting).
    work: Callable[[], bool | Pause]
    idle_wait: float
    # Waits up to its argument in seconds, returning early on a wake-up; None: a plain
    # sleep that a stop cuts short.
    wake: Callable[[float], object] | None = None
    heartbeat: Heartbeat | None = None
    error_pause: float = 2.0
    # "warning" where an error is an expected outage (the database away), "error" where
    # it means a bug; the event is ``<name>_failed`` unless named.
    error_level: LogLevel = "error"
    error_event: str | None = None
    # False where the error is an outage whose traceback says nothing new every turn: the
    # log line then carries the error's type and text instead.
    error_traceback: bool = True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.heartbeat is not None:
                self.heartbeat.beat()
            try:
                more = self.work()
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one failure, by design
                if stop.is_set() and isinstance(exc, PoolClosed):
                    return  # the stop closed the pool under a turn waiting for the database
                self._failed(exc)
                stop.wait(self.error_pause)  # instead of the idle wait, not on top of it
                continue
            if isinstance(more, Pause):
                stop.wait(more.seconds)
            elif not more and not stop.is_set():
                self._wait(stop)

    def _failed(self, exc: Exception) -> None:
        event = self.error_event or f"{self.name}_failed"
        emit = getattr(log, self.error_level)
        if self.error_traceback:
            emit(event, loop=self.name, exc_info=True)
        else:
            emit(
                event,
                loop=self.name,
                error_type=type(exc).__name__,
                error=str(exc)[:ERROR_TEXT_LIMIT],
            )

    def _wait(self, stop: threading.Event) -> None:
        if self.wake is None:
            stop.wait(self.idle_wait)
        else:
            self.wake(self.idle_wait)
