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
from imapclient.exceptions import IMAPClientAbortError
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.db import MAILBOX_CHANNEL
from common.errors import BandejaError, Throttled, TokenNotReady
from common.health import Heartbeat
from common.settings import Settings
from common.tokens import ExpiryMargin, TokenCipher, request_refresh
from services.fetcher import limits, metrics, store
from services.fetcher.errors import TokenRejected
from services.fetcher.imap import ImapSession, translate, translated

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=60)
# The session is re-opened this long before its token expires (Exchange would end it with
# BYE AccessTokenExpired); by then auth has renewed the token (15-30 % of its life ahead).
TOKEN_MARGIN = ExpiryMargin(timedelta(seconds=30), 0.10)
_NEW_MAIL = (b"EXISTS", b"RECENT")


def wake_mailbox(conn: Connection[Any], mailbox_id: int) -> None:
    conn.execute("UPDATE mailboxes SET next_fetch_at = now() WHERE id = %s", (mailbox_id,))
    conn.execute(f"NOTIFY {MAILBOX_CHANNEL}")


class IdleWatcher:
    """One mailbox's IDLE session, re-opened as long as it is wanted."""

    def __init__(self, supervisor: IdleSupervisor, mailbox: dict[str, Any]) -> None:
        self._sup = supervisor
        self.mailbox_id: int = mailbox["id"]
        self._address: str = mailbox["address"]
        self._tenant_id: str = mailbox["tenant_id"]
        self._folder: str = mailbox["folder"]
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"idle-{self.mailbox_id}", daemon=True
        )

    def _run(self) -> None:
        failures = 0
        while not self.stop.is_set() and not self._sup.stopping.is_set():
            try:
                self._session()
                failures = 0
            except BandejaError as exc:
                failures += 1
                self.stop.wait(self._pause_after(exc, failures))
            except psycopg.Error as exc:  # the database is away; IDLE waits for it
                failures += 1
                log.info("idle_database_unavailable", error_type=type(exc).__name__)
                self.stop.wait(min(30.0, 2.0 * failures))

    def _pause_after(self, exc: BandejaError, failures: int) -> float:
        if isinstance(exc, TokenRejected | TokenNotReady):
            with self._sup.pool.connection() as conn:
                request_refresh(conn, self.mailbox_id)
            return 2.0
        if isinstance(exc, Throttled):
            with self._sup.pool.connection() as conn:
                limits.throttle_tenant(conn, self._tenant_id, exc.backoff_seconds)
            return float(max(exc.backoff_seconds, 1.0))
        log.info("idle_session_failed", mailbox_id=self.mailbox_id, error=str(exc)[:200])
        return float(min(60.0, 2.0 * 2 ** min(failures, 5)))

    def _session(self) -> None:
        with self._sup.pool.connection() as conn:
            if not self._still_wanted(conn):
                # Disconnected, paused or needs_reauth: no more logins with a dead grant.
                self.stop.set()
                return
            wait = limits.throttled_for(conn, self._tenant_id)
        if wait > 0:  # the tenant was told to back off: no new session before then
            self.stop.wait(wait)
            return
        usable = self._token()
        session = ImapSession.open(self._sup.settings, self._address, usable.token)
        try:
            self._watch(session, usable.usable_until)
        except Throttled:
            session.drop()  # no LOGOUT either: silence for the suggested time
            raise
        finally:
            session.close()

    def _watch(self, session: ImapSession, reconnect_at: datetime) -> None:
        client = session.raw_client()
        with translated():
            client.select_folder(self._folder, readonly=True)
        # Mail that arrived while no session was open is fetched now.
        self._sup.wake(self.mailbox_id)
        while not self.stop.is_set() and datetime.now(UTC) < reconnect_at:
            renew_at = time.monotonic() + self._sup.settings.idle_renew_seconds
            self._idle_once(client, renew_at, reconnect_at)

    def _idle_once(self, client: Any, renew_at: float, reconnect_at: datetime) -> None:
        with translated():
            client.idle()
            try:
                while (
                    not self.stop.is_set()
                    and time.monotonic() < renew_at
                    and datetime.now(UTC) < reconnect_at
                ):
                    responses = client.idle_check(timeout=1.0)
                    _raise_on_bye(responses)
                    if any(len(r) > 1 and r[1] in _NEW_MAIL for r in responses):
                        self._sup.wake(self.mailbox_id)
            finally:
                client.idle_done()

    def _still_wanted(self, conn: Connection[Any]) -> bool:
        row = conn.execute(
            "SELECT 1 FROM mailboxes WHERE id = %s AND state = 'active' AND use_idle"
            " AND idle_owner = %s",
            (self.mailbox_id, self._sup.owner),
        ).fetchone()
        return row is not None

    def _token(self) -> store.UsableToken:
        with self._sup.pool.connection() as conn:
            return store.usable_access_token(conn, self._sup.cipher, self.mailbox_id, TOKEN_MARGIN)


def _raise_on_bye(responses: list[Any]) -> None:
    """A BYE during IDLE arrives as an untagged response, not as an exception: Exchange
    ends sessions this way when the token expires (``BYE Session invalidated -
    AccessTokenExpired``) or at random (``BYE Connection closed. 14``)."""
    for response in responses:
        if response and response[0] == b"BYE":
            text = b" ".join(r if isinstance(r, bytes) else str(r).encode() for r in response)
            raise translate(IMAPClientAbortError(text.decode(errors="replace")))


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
        self.stopping = threading.Event()
        self.watchers: dict[int, IdleWatcher] = {}
        self.heartbeat = Heartbeat()

    def wake(self, mailbox_id: int) -> None:
        with self.pool.connection() as conn:
            wake_mailbox(conn, mailbox_id)
        metrics.IDLE_WAKEUPS.inc()

    def _claim(self, room: int) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            return conn.execute(
                "UPDATE mailboxes SET idle_owner = %s, idle_lease_until = now() + %s"
                " WHERE id IN (SELECT id FROM mailboxes WHERE state = 'active' AND use_idle"
                "   AND (idle_lease_until IS NULL OR idle_lease_until < now()"
                "        OR idle_owner = %s)"
                "   ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING id, address, folder, tenant_id",
                (self.owner, LEASE, self.owner, room),
            ).fetchall()

    def _renew(self) -> set[int]:
        """Renew our leases; return the mailboxes still wanted (active, ours)."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "UPDATE mailboxes SET idle_lease_until = now() + %s"
                " WHERE idle_owner = %s AND state = 'active' AND use_idle AND id = ANY(%s)"
                " RETURNING id",
                (LEASE, self.owner, list(self.watchers)),
            ).fetchall()
        return {r["id"] for r in rows}

    def cycle(self) -> None:
        for mailbox_id in [m for m, w in self.watchers.items() if not w.thread.is_alive()]:
            del self.watchers[mailbox_id]  # a watcher that died is replaced below
        wanted = self._renew() if self.watchers else set()
        for mailbox_id in [m for m in self.watchers if m not in wanted]:
            self.watchers.pop(mailbox_id).stop.set()
        room = self.settings.idle_sessions - len(self.watchers)
        if room <= 0:
            return
        for mailbox in self._claim(room):
            if mailbox["id"] in self.watchers:
                continue
            watcher = IdleWatcher(self, mailbox)
            self.watchers[watcher.mailbox_id] = watcher
            watcher.thread.start()
        metrics.IDLE_SESSIONS.set(len(self.watchers))

    def run_forever(self, stop: threading.Event, interval: float = 5.0) -> None:
        while not stop.is_set():
            self.heartbeat.beat()
            try:
                self.cycle()
            except Exception:
                log.exception("idle_supervisor_error")
            stop.wait(interval)
        self.stopping.set()
        for watcher in self.watchers.values():
            watcher.stop.set()
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE mailboxes SET idle_owner = NULL, idle_lease_until = NULL"
                " WHERE idle_owner = %s",
                (self.owner,),
            )
