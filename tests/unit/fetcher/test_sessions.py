"""Which parked IMAP session a fetch run may reuse (services/fetcher/sessions.py).

The sessions here are stand-ins that record what the pool does to them; the real
sessions against Dovecot are covered by tests/e2e/test_fetcher.py.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from common.errors import Throttled
from services.fetcher.errors import ConnectionDropped
from services.fetcher.imap import ImapSession
from services.fetcher.sessions import SessionPool

ADDRESS = "docs@corp.example"


class RecordingSession:
    def __init__(self, alive: bool = True, throttled: bool = False) -> None:
        self.alive = alive
        self.throttled = throttled
        self.calls: list[str] = []

    def noop(self) -> None:
        self.calls.append("noop")
        if self.throttled:
            raise Throttled(
                "Request is throttled. Suggested Backoff Time: 3000 milliseconds", backoff_seconds=3
            )
        if not self.alive:
            raise ConnectionDropped("IMAPClientAbortError: socket error: EOF")

    def close(self) -> None:
        self.calls.append("logout")

    def drop(self) -> None:
        self.calls.append("drop")


def session(alive: bool = True, throttled: bool = False) -> Any:
    return RecordingSession(alive, throttled)


def calls(s: Any) -> list[str]:
    return cast(RecordingSession, s).calls


def as_imap(s: Any) -> ImapSession:
    return cast(ImapSession, s)


@pytest.fixture
def expiry() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=30)


def test_the_same_token_reuses_the_session_after_a_noop(expiry: datetime) -> None:
    pool = SessionPool(capacity=10, keep_seconds=300)
    parked = session()
    pool.park(1, ADDRESS, as_imap(parked), expiry)
    assert pool.take(1, ADDRESS, expiry) is parked
    assert calls(parked) == ["noop"]
    assert pool.take(1, ADDRESS, expiry) is None  # taken: one run at a time holds it


def test_a_refreshed_token_logs_in_afresh(expiry: datetime) -> None:
    """After a refresh the old session is logged out: it would die at the old expiry."""
    pool = SessionPool(capacity=10, keep_seconds=300)
    parked = session()
    pool.park(1, ADDRESS, as_imap(parked), expiry)
    assert pool.take(1, ADDRESS, expiry + timedelta(minutes=50)) is None
    assert calls(parked) == ["logout"]


def test_a_token_about_to_expire_is_not_worth_reusing() -> None:
    pool = SessionPool(capacity=10, keep_seconds=300)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    parked = session()
    pool.park(1, ADDRESS, as_imap(parked), soon)
    assert pool.take(1, ADDRESS, soon) is None
    assert calls(parked) == ["logout"]


def test_a_short_lived_token_keeps_its_session_until_near_its_own_end() -> None:
    """A 60 s token with 30 s left: a fixed one-minute reserve would never reuse its
    session; a tenth of its lifetime (6 s) does."""
    pool = SessionPool(capacity=10, keep_seconds=300)
    now = datetime.now(UTC)
    issued, expires = now - timedelta(seconds=30), now + timedelta(seconds=30)
    parked = session()
    pool.park(1, ADDRESS, as_imap(parked), expires)
    assert pool.take(1, ADDRESS, expires, issued) is parked
    pool.park(1, ADDRESS, as_imap(parked), expires)
    late = now - timedelta(seconds=100)  # a 130 s token: 13 s reserve, 30 s left
    assert pool.take(1, ADDRESS, expires, late) is parked
    pool.park(1, ADDRESS, as_imap(parked), expires)
    assert pool.take(1, ADDRESS, expires, now - timedelta(hours=1)) is None  # 60 s reserve


def test_a_session_the_server_closed_is_dropped(expiry: datetime) -> None:
    pool = SessionPool(capacity=10, keep_seconds=300)
    dead = session(alive=False)
    pool.park(1, ADDRESS, as_imap(dead), expiry)
    assert pool.take(1, ADDRESS, expiry) is None
    assert calls(dead) == ["noop", "drop"]


def test_a_throttled_noop_is_the_tenant_throttle_not_a_dead_session(expiry: datetime) -> None:
    """Exchange may answer the NOOP with its throttling reply: the run must back off for
    the suggested time, not log in again at once."""
    pool = SessionPool(capacity=10, keep_seconds=300)
    throttled = session(throttled=True)
    pool.park(1, ADDRESS, as_imap(throttled), expiry)
    with pytest.raises(Throttled):
        pool.take(1, ADDRESS, expiry)
    assert calls(throttled) == ["noop", "drop"]


def test_capacity_logs_out_the_longest_parked(expiry: datetime) -> None:
    pool = SessionPool(capacity=2, keep_seconds=300)
    first, second, third = session(), session(), session()
    for mailbox_id, s in enumerate((first, second, third), start=1):
        pool.park(mailbox_id, ADDRESS, as_imap(s), expiry)
    assert calls(first) == ["logout"]
    assert pool.take(2, ADDRESS, expiry) is second
    assert pool.take(3, ADDRESS, expiry) is third


def test_sessions_parked_too_long_are_logged_out(
    expiry: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = SessionPool(capacity=10, keep_seconds=300)
    old = session()
    pool.park(1, ADDRESS, as_imap(old), expiry)
    clock = time.monotonic() + 301
    monkeypatch.setattr("services.fetcher.sessions.time.monotonic", lambda: clock)
    assert pool.take(2, ADDRESS, expiry) is None  # any visit sweeps the old ones
    assert calls(old) == ["logout"]


def test_keeping_off_logs_out_at_once(expiry: datetime) -> None:
    pool = SessionPool(capacity=0, keep_seconds=300)
    parked = session()
    pool.park(1, ADDRESS, as_imap(parked), expiry)
    assert calls(parked) == ["logout"]
    assert pool.take(1, ADDRESS, expiry) is None


def test_close_all_logs_everything_out(expiry: datetime) -> None:
    pool = SessionPool(capacity=10, keep_seconds=300)
    parked = [session() for _ in range(3)]
    for mailbox_id, s in enumerate(parked):
        pool.park(mailbox_id, ADDRESS, as_imap(s), expiry)
    pool.close_all()
    assert [calls(s) for s in parked] == [["logout"]] * 3
