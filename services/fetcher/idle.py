"""IMAP IDLE push: new mail is fetched within a second instead of a poll interval.

Each fetcher process watches up to ``BANDEJA_IDLE_SESSIONS`` mailboxes, claimed through a
renewable lease on the mailbox row so every mailbox has one watcher across replicas. A
watcher only *notices* mail: it makes the mailbox due now and wakes the scheduler, and
the ordinary fetch run (lease, store, enqueue, post-action) does the rest. Polling stays
as the safety net.

IDLE is re-issued every ``BANDEJA_IDLE_RENEW_SECONDS`` (RFC 2177 asks for less than 29
minutes; Exchange's own timeout is undocumented, docs/architecture.md#exo-limits), and the session
is re-opened before the access token expires, since Exchange ends it with
``BYE Session invalidated - AccessTokenExpired``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.errors import BandejaError, TokenNotReady
from common.health import Heartbeat
from common.loops import Loop, Pause
from common.settings import Settings
from common.tokens import ExpiryMargin, TokenCipher, request_refresh
from services.fetcher import failure_policy, metrics, store
from services.fetcher.imap import ImapSession
from services.fetcher.store import idle_leases, tenant_limits
from services.fetcher.store.idle_leases import WatchedMailbox

log = structlog.get_logger(__name__)

# The session is re-opened this long before its token expires (Exchange would end it with
# BYE AccessTokenExpired); by then auth has renewed the token (15-30 % of its life ahead).
TOKEN_MARGIN = ExpiryMargin(timedelta(seconds=30), 0.10)
# The supervisor's cycle: claims renewed, dead watchers replaced.
SUPERVISOR_INTERVAL = 5.0
UNEXPECTED_ERROR_PAUSE = SUPERVISOR_INTERVAL


class IdleWatcher:
    """One mailbox's IDLE session, re-opened as long as it is wanted."""

    def __init__(self, supervisor: IdleSupervisor, mailbox: WatchedMailbox) -> None:
        self._sup = supervisor
        self.mailbox_id = mailbox.id
        self._address = mailbox.address
        self._tenant_id = mailbox.tenant_id
        self._folder = mailbox.folder
        self.stop = threading.Event()
        self._failures = 0  # failed sessions in a row
        self.thread = threading.Thread(
            target=self._run, name=f"idle-{self.mailbox_id}", daemon=True
        )

    def _run(self) -> None:
        Loop(
            f"idle-{self.mailbox_id}",
            work=self._turn,
            idle_wait=0.0,  # unused: every turn answers "again now" or a pause
            # An error the failure policy does not know is a bug: logged with its
            # traceback, and the session tried again after a supervisor's interval (the
            # old thread died and was replaced that much later).
            error_pause=UNEXPECTED_ERROR_PAUSE,
            error_event="idle_watcher_error",
        ).run(self.stop)

    def _turn(self) -> bool | Pause:
        """One IDLE session, held until it ends; the next at once, or after a failure
        the pause the failure policy gives."""
        try:
            throttled = self._session()
        except BandejaError as exc:
            pause = self._pause_after(exc, self._failures)
            self._failures += 1
            return Pause(pause)
        except psycopg.Error as exc:  # the database is away; IDLE waits for it
            self._failures += 1
            log.info("idle_database_unavailable", error_type=type(exc).__name__)
            return Pause(min(30.0, 2.0 * self._failures))
        self._failures = 0
        return throttled or True

    def _pause_after(self, exc: BandejaError, failures: int) -> float:
        decision = failure_policy.after_idle_failure(exc, failure_policy.History(failures))
        if decision.request_token_refresh or decision.throttle_tenant_seconds > 0:
            with self._sup.pool.connection() as conn:
                if decision.request_token_refresh:
                    request_refresh(conn, self.mailbox_id)
                if decision.throttle_tenant_seconds > 0:
                    tenant_limits.throttle_tenant(
                        conn, self._tenant_id, decision.throttle_tenant_seconds
                    )
        if decision.result == "error":
            log.info("idle_session_failed", mailbox_id=self.mailbox_id, error=str(exc)[:200])
        return decision.retry_in

    def _session(self) -> Pause | None:
        """One IDLE session until it ends; a pause instead when the tenant is throttled."""
        with self._sup.pool.connection() as conn:
            if not idle_leases.still_wanted(conn, self._sup.owner, self.mailbox_id):
                # Disconnected, paused or needs_reauth: no more logins with a dead grant.
                self.stop.set()
                return None
            wait = tenant_limits.throttled_for(conn, self._tenant_id)
        if wait > 0:  # the tenant was told to back off: no new session before then
            return Pause(wait)
        usable = self._token()
        session = ImapSession.open(self._sup.settings, self._address, usable.token)
        try:
            self._watch(session, usable.usable_until)
        except BaseException as exc:
            if failure_policy.ends_without_logout(exc):
                session.drop()
            raise
        finally:
            session.close()
        return None

    def _watch(self, session: ImapSession, reconnect_at: datetime) -> None:
        session.select_readonly(self._folder)
        # Mail that arrived while no session was open is fetched now.
        self._sup.wake(self.mailbox_id)
        while not self.stop.is_set() and datetime.now(UTC) < reconnect_at:
            renew_at = time.monotonic() + self._sup.settings.idle_renew_seconds
            self._idle_once(session, renew_at, reconnect_at)

    def _idle_once(self, session: ImapSession, renew_at: float, reconnect_at: datetime) -> None:
        with session.idling():
            while (
                not self.stop.is_set()
                and time.monotonic() < renew_at
                and datetime.now(UTC) < reconnect_at
            ):
                if session.idle_check(timeout=1.0):
                    self._sup.wake(self.mailbox_id)

    def _token(self) -> store.UsableToken:
        with self._sup.pool.connection() as conn:
            usable = store.usable_access_token(
                conn, self._sup.cipher, self.mailbox_id, TOKEN_MARGIN
            )
        if usable is None:
            raise TokenNotReady(self.mailbox_id)
        return usable


class IdleSupervisor:
    """Claims mailboxes to watch, renews the claims, and stops watchers no longer wanted."""

    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool[Connection[Any]],
        cipher: TokenCipher,
        owner: str,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.cipher = cipher
        self.owner = owner
        self.watchers: dict[int, IdleWatcher] = {}
        self.heartbeat = Heartbeat()

    def wake(self, mailbox_id: int) -> None:
        with self.pool.connection() as conn:
            store.wake_mailbox(conn, mailbox_id)
        metrics.IDLE_WAKEUPS.inc()

    def cycle(self) -> None:
        for mailbox_id in [m for m, w in self.watchers.items() if not w.thread.is_alive()]:
            del self.watchers[mailbox_id]  # a watcher that died is replaced below
        wanted = self._renew() if self.watchers else set()
        for mailbox_id in [m for m in self.watchers if m not in wanted]:
            self.watchers.pop(mailbox_id).stop.set()
        room = self.settings.idle_sessions - len(self.watchers)
        if room <= 0:
            return
        with self.pool.connection() as conn:
            claimed = idle_leases.claim(conn, self.owner, room)
        for mailbox in claimed:
            if mailbox.id in self.watchers:
                continue
            watcher = IdleWatcher(self, mailbox)
            self.watchers[watcher.mailbox_id] = watcher
            watcher.thread.start()
        metrics.IDLE_SESSIONS.set(len(self.watchers))

    def _cycle_turn(self) -> bool:
        self.cycle()
        return False  # nothing waits: the next cycle is an interval away

    def _renew(self) -> set[int]:
        with self.pool.connection() as conn:
            return idle_leases.renew(conn, self.owner, list(self.watchers))

    def run_forever(self, stop: threading.Event, interval: float = SUPERVISOR_INTERVAL) -> None:
        loop = Loop(
            "idle_supervisor",
            work=self._cycle_turn,
            idle_wait=interval,
            heartbeat=self.heartbeat,
            # The claims are renewed every interval, error or not: a lease (60 s) outlives
            # a dozen failed turns, so a short outage does not hand the mailboxes over.
            error_pause=interval,
            error_event="idle_supervisor_error",
        )
        loop.run(stop)
        for watcher in self.watchers.values():
            watcher.stop.set()
        with self.pool.connection() as conn:
            idle_leases.release_all(conn, self.owner)
