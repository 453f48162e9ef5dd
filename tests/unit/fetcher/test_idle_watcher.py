"""An IDLE watcher's turns (services/fetcher/idle.py): the pause after a failed session
grows with failures in a row and starts over after a good one, and an error the failure
policy does not know leaves the watcher watching. The sessions are stand-ins; real IDLE
against Dovecot is covered by tests/e2e/test_fetcher.py and test_exchange_behaviour.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import psycopg
import pytest

from common.errors import ServiceUnavailable
from common.loops import Pause
from services.fetcher import idle
from services.fetcher.idle import IdleSupervisor, IdleWatcher
from services.fetcher.store.idle_leases import WatchedMailbox


def _watcher(*outcomes: BaseException | None) -> tuple[IdleWatcher, list[int]]:
    """A watcher whose sessions end as ``outcomes`` say (None: a session that ended well);
    after the last one it is stopped. Returns it and the count of sessions opened."""
    supervisor = cast(IdleSupervisor, SimpleNamespace())
    watcher = IdleWatcher(supervisor, WatchedMailbox(7, "docs@corp.example", "INBOX", "t1"))
    opened: list[int] = []

    def session() -> None:
        opened.append(1)
        if len(opened) >= len(outcomes):
            watcher.stop.set()
        outcome = outcomes[min(len(opened), len(outcomes)) - 1]
        if outcome is not None:
            raise outcome

    watcher._session = session  # type: ignore[method-assign]
    return watcher, opened


def test_pauses_grow_with_failures_in_a_row_and_start_over_after_a_good_session() -> None:
    away = ServiceUnavailable("server away")
    watcher, _ = _watcher(away, away, away, None, away)
    turns: list[Any] = [watcher._turn() for _ in range(5)]
    assert turns == [Pause(4.0), Pause(8.0), Pause(16.0), True, Pause(4.0)]


def test_the_database_away_backs_off_to_at_most_half_a_minute() -> None:
    down = psycopg.OperationalError("connection refused")
    watcher, _ = _watcher(*[down] * 16)
    turns = [watcher._turn() for _ in range(16)]
    assert turns[:3] == [Pause(2.0), Pause(4.0), Pause(6.0)]
    assert turns[-1] == Pause(30.0)


def test_an_unknown_error_leaves_the_watcher_watching(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in one session is logged and the next session opened in the same thread
    (it used to end the thread, and the mailbox went unwatched until the next cycle)."""
    monkeypatch.setattr(idle, "UNEXPECTED_ERROR_PAUSE", 0.01)
    watcher, opened = _watcher(RuntimeError("bug"), None)
    watcher.thread.start()
    watcher.thread.join(5)
    assert not watcher.thread.is_alive()
    assert len(opened) == 2
