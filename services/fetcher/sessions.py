"""Logged-in IMAP sessions kept between fetch runs of the same mailbox.

Exchange prefers one long-lived connection per mailbox: frequent connect / authenticate /
disconnect cycles are reported to trigger ``BAD User is authenticated but not connected``
(docs/architecture.md#exo-limits). A poll that finds its mailbox's session still logged in also
skips the TCP and TLS handshakes and the XOAUTH2 login, which were most of the cost of a quiet poll.

A session is reused only with the very access token it logged in with, and only while that
token has time left: after a refresh the next run logs in afresh, and a session never
meets ``BYE ... AccessTokenExpired`` because it was parked too long. Each one is checked
with a NOOP before use, so a connection the server closed meanwhile costs one round trip;
a throttled NOOP is the tenant's throttle like any other (no fresh login is tried).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from common.errors import BandejaError, Throttled
from common.tokens import ExpiryMargin
from services.fetcher import metrics
from services.fetcher.imap import ImapSession

log = structlog.get_logger(__name__)

# A parked session is not reused when its token would expire this soon: a fetch run
# holding it could otherwise be cut by the server's BYE mid-batch. A share of the token's
# lifetime (at most a minute), so short-lived tokens' sessions are reused too.
TOKEN_RESERVE = ExpiryMargin(timedelta(seconds=60), 0.10)
# LOGOUTs in flight at shutdown: each is a round trip, so threads overlap the waits.
LOGOUT_THREADS = 16


@dataclass
class _Parked:
    session: ImapSession
    address: str
    token_expires_at: datetime
    parked_at: float


class SessionPool:
    """At most ``capacity`` idle sessions, one per mailbox, each for ``keep_seconds``."""

    def __init__(self, capacity: int, keep_seconds: float) -> None:
        self._capacity = capacity
        self._keep_seconds = keep_seconds
        self._parked: OrderedDict[int, _Parked] = OrderedDict()
        self._lock = threading.Lock()

    def take(
        self,
        mailbox_id: int,
        address: str,
        token_expires_at: datetime,
        token_issued_at: datetime | None = None,
    ) -> ImapSession | None:
        """The mailbox's parked session if it is still usable with this token, else None."""
        with self._lock:
            parked = self._parked.pop(mailbox_id, None)
            stale = self._expired_locked()
        _close_all(stale)
        if parked is None:
            return None
        usable = (
            parked.address == address
            and parked.token_expires_at == token_expires_at
            and token_expires_at - TOKEN_RESERVE.of(token_issued_at, token_expires_at)
            > datetime.now(UTC)
        )
        if not usable:
            parked.session.close()
            return None
        try:
            parked.session.noop()
        except Throttled:
            # The tenant must be left alone for the suggested time: no fresh login either.
            parked.session.drop()
            raise
        except BandejaError:
            parked.session.drop()
            metrics.SESSIONS_REUSED.labels("dead").inc()
            return None
        metrics.SESSIONS_REUSED.labels("reused").inc()
        return parked.session

    def park(
        self, mailbox_id: int, address: str, session: ImapSession, token_expires_at: datetime
    ) -> None:
        """Keep ``session`` for the mailbox's next run (LOGOUT at once if keeping is off)."""
        if self._capacity <= 0 or self._keep_seconds <= 0:
            session.close()
            return
        entry = _Parked(session, address, token_expires_at, time.monotonic())
        with self._lock:
            replaced = self._parked.pop(mailbox_id, None)
            self._parked[mailbox_id] = entry
            evicted = [self._parked.popitem(last=False)[1] for _ in range(self._overflow())]
            evicted += self._expired_locked()  # also sets the gauge
        _close_all(([replaced] if replaced else []) + evicted)

    def close_all(self) -> None:
        """LOGOUT every parked session (at shutdown), several at a time: one after the
        other, a replica's 10,000 took longer than the 30 s the bench waits for a stop."""
        with self._lock:
            parked = list(self._parked.values())
            self._parked.clear()
            metrics.SESSIONS_PARKED.set(0)
        _close_all(parked, threads=LOGOUT_THREADS)

    def _overflow(self) -> int:
        return max(len(self._parked) - self._capacity, 0)

    def _expired_locked(self) -> list[_Parked]:
        # Parking order is age order: the oldest entries are at the front.
        deadline = time.monotonic() - self._keep_seconds
        expired = []
        while self._parked:
            mailbox_id, oldest = next(iter(self._parked.items()))
            if oldest.parked_at > deadline:
                break
            expired.append(self._parked.pop(mailbox_id))
        metrics.SESSIONS_PARKED.set(len(self._parked))
        return expired


def _close_all(entries: list[_Parked], threads: int = 1) -> None:
    """LOGOUT each entry's session; with ``threads`` > 1, that many at once."""
    if threads <= 1 or len(entries) <= 1:
        for entry in entries:
            entry.session.close()
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="logout") as pool:
        list(pool.map(lambda entry: entry.session.close(), entries))
