"""The refresh loop: renews access tokens ahead of expiry, one refresher per token.

Replicas claim due tokens with ``FOR UPDATE SKIP LOCKED`` and a lease, so each token is
refreshed by exactly one of them at a time. The fetcher asks for a forced refresh by
making a token due now and sending NOTIFY; the loop wakes on it.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.db import TOKEN_REFRESH_CHANNEL, NotificationListener
from common.errors import ConfigurationError
from common.health import Heartbeat
from common.settings import Settings
from common.tokens import TokenCipher
from services.auth import metrics, store
from services.auth.classify import Classification
from services.auth.id_token import signed_in_account
from services.auth.identity import IdentityClient, IdentityFailure, TokenResult
from services.auth.messages import human_message
from services.auth.schedule import CONFIG_BACKOFF, backoff_seconds, next_refresh_at

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=120)
BATCH = 20
FAR_FUTURE = timedelta(days=3650)

_CONFIG_REASONS = {
    "invalid_client_secret": "invalid_secret",
    "expired_client_secret": "expired_secret",
    "unknown_client": "unknown_client",
}


@dataclass(frozen=True)
class Claim:
    mailbox_id: int
    address: str
    tenant_id: str
    auth_kind: str
    token_cache: bytes | None
    home_account_id: str | None
    generation: int
    failure_count: int
    forced: bool
    app_token_cache: bytes | None
    object_id: str | None = None


class Refresher:
    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool[Connection[Any]],
        identity: IdentityClient,
        cipher: TokenCipher,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._identity = identity
        self._cipher = cipher
        self._owner = f"{socket.gethostname()}:{id(self)}"
        self._paused_until = 0.0
        self.heartbeat = Heartbeat()

    def claim_due(self, limit: int = BATCH) -> list[Claim]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "UPDATE mailbox_tokens t SET refresh_lease_until = now() + %s"
                " FROM mailboxes m LEFT JOIN tenants tn ON tn.tenant_id = m.tenant_id"
                " WHERE m.id = t.mailbox_id AND t.mailbox_id IN ("
                "   SELECT t2.mailbox_id FROM mailbox_tokens t2"
                "   JOIN mailboxes m2 ON m2.id = t2.mailbox_id"
                "   WHERE m2.state = 'active' AND t2.refresh_due_at <= now()"
                "     AND (t2.refresh_lease_until IS NULL OR t2.refresh_lease_until < now())"
                "   ORDER BY t2.refresh_due_at LIMIT %s FOR UPDATE OF t2 SKIP LOCKED)"
                " RETURNING t.mailbox_id, m.address, m.tenant_id, m.auth_kind, t.token_cache,"
                "   t.home_account_id, t.generation, t.failure_count,"
                "   t.refresh_requested AS forced, tn.app_token_cache, m.object_id",
                (LEASE, limit),
            ).fetchall()
        return [Claim(**r) for r in rows]

    def refresh(self, claim: Claim) -> None:
        log.debug("token_refresh_started", mailbox_id=claim.mailbox_id, forced=claim.forced)
        try:
            result = self._acquire(claim)
        except IdentityFailure as failure:
            self._record_failure(claim, failure.classification, failure.description)
            return
        except ConfigurationError:
            self._undecryptable(claim)
            return
        self._record_success(claim, result)

    def refresh_isolated(self, claim: Claim) -> None:
        """Refresh one token; whatever goes wrong stays with that mailbox, and the rest of
        the batch goes on instead of waiting out the lease behind it."""
        try:
            self.refresh(claim)
        except Exception:
            log.exception("token_refresh_crashed", mailbox_id=claim.mailbox_id)
            metrics.REFRESHES.labels("failure", "transient").inc()
            delay = backoff_seconds(claim.failure_count)
            with self._pool.connection() as conn:
                self._release(conn, claim, timedelta(seconds=delay), claim.failure_count + 1)

    def _acquire(self, claim: Claim) -> TokenResult:
        if claim.auth_kind == "app_only":
            # acquire_token_for_client cannot force a refresh; skipping the cached state
            # does, when IMAP refused a token msal still trusts.
            cached = None if claim.forced else self._app_cache(claim)
            return self._identity.app_only_token(claim.tenant_id, cached)
        if claim.token_cache is None:
            raise IdentityFailure(Classification("reauth", "consent_missing", "no_refresh_token"))
        return self._identity.refresh_delegated(
            claim.tenant_id, self._cipher.decrypt(claim.token_cache), claim.home_account_id
        )

    def _app_cache(self, claim: Claim) -> str | None:
        if claim.app_token_cache is None:
            return None
        try:
            return self._cipher.decrypt(claim.app_token_cache)
        except ConfigurationError:
            # Only a cache of app tokens the client secret can get again: start afresh.
            log.warning("app_token_cache_undecryptable", tenant_id=claim.tenant_id)
            return None

    def _undecryptable(self, claim: Claim) -> None:
        """The refresh token is sealed with a key no longer configured: only a reconnect
        (or the key put back) helps. The mailbox says so; the others are unaffected."""
        metrics.TOKENS_UNDECRYPTABLE.inc()
        metrics.REFRESHES.labels("failure", "config").inc()
        reason = {"class": "config", "error": "undecryptable_token", "aadsts": None}
        message = human_message("undecryptable_token", "config")["en"]
        with self._pool.connection() as conn, conn.transaction():
            moved = store.move_to_error(conn, claim.mailbox_id, reason, message)
            self._release(conn, claim, FAR_FUTURE, failures=claim.failure_count + 1)
        log.error("token_undecryptable", mailbox_id=claim.mailbox_id, moved_to_error=moved)

    def _record_success(self, claim: Claim, result: TokenResult) -> None:
        now = datetime.now(UTC)
        cache = self._cipher.encrypt(result.cache_state) if result.cache_state else None
        with self._pool.connection() as conn, conn.transaction():
            # The generation check keeps a reconnect's newer tokens from being overwritten.
            conn.execute(
                "UPDATE mailbox_tokens SET token_cache = CASE WHEN %(app)s THEN token_cache"
                "   ELSE %(cache)s END, access_token = %(at)s, access_expires_at = %(exp)s,"
                "   refresh_due_at = %(due)s, refresh_requested = false,"
                "   refresh_lease_until = NULL, failure_count = 0, last_refresh_at = now(),"
                "   updated_at = now()"
                " WHERE mailbox_id = %(id)s AND generation = %(gen)s",
                {
                    "app": claim.auth_kind == "app_only",
                    "cache": cache,
                    "at": self._cipher.encrypt(result.access_token),
                    "exp": result.expires_at,
                    "due": next_refresh_at(now, result.expires_at),
                    "id": claim.mailbox_id,
                    "gen": claim.generation,
                },
            )
            if claim.auth_kind == "delegated" and claim.object_id is None:
                self._learn_account(conn, claim, result)
            if claim.auth_kind == "app_only" and cache is not None:
                conn.execute(
                    "UPDATE tenants SET app_token_cache = %s WHERE tenant_id = %s",
                    (cache, claim.tenant_id),
                )
        metrics.REFRESHES.labels("success", "none").inc()
        metrics.CLIENT_SECRET_VALID.set(1)
        log.info(
            "token_refreshed", mailbox_id=claim.mailbox_id, expires_at=result.expires_at.isoformat()
        )

    @staticmethod
    def _learn_account(conn: Connection[Any], claim: Claim, result: TokenResult) -> None:
        """A row connected before accounts were recorded takes its account from the
        refresh's validated id_token (only within the tenant it is recorded under)."""
        account = signed_in_account(result.claims)
        if account is None or account.tenant_id != claim.tenant_id.lower():
            return
        if store.learn_account(conn, claim.mailbox_id, claim.tenant_id, account.object_id):
            log.info("mailbox_account_recorded", mailbox_id=claim.mailbox_id)

    def _record_failure(self, claim: Claim, failure: Classification, description: str) -> None:
        metrics.REFRESHES.labels("failure", failure.reason_class).inc()
        log.warning(
            "token_refresh_failed",
            mailbox_id=claim.mailbox_id,
            reason_class=failure.reason_class,
            reason=failure.reason,
            error=failure.error,
            aadsts=failure.aadsts,
        )
        if failure.needs_person:
            self._needs_person(claim, failure)
        elif failure.reason_class == "config":
            self._config_problem(claim, failure)
        else:
            self._transient(claim, failure)

    def _needs_person(self, claim: Claim, failure: Classification) -> None:
        reason = {"class": failure.reason_class, "error": failure.reason, "aadsts": failure.aadsts}
        # Encoded: an address may hold "+", which a raw query string reads as a space.
        query = urlencode({"login_hint": claim.address})
        reconnect = f"{self._settings.public_url}/connect?{query}"
        with self._pool.connection() as conn, conn.transaction():
            moved = store.move_to_needs_reauth(
                conn,
                claim.mailbox_id,
                reason,
                human_message(failure.reason, failure.reason_class),
                reconnect,
            )
            self._release(conn, claim, FAR_FUTURE, failures=claim.failure_count + 1)
        if moved:
            metrics.REAUTH_NEEDED.labels(failure.reason_class).inc()
            log.warning("mailbox_needs_reauth", mailbox_id=claim.mailbox_id, reason=failure.reason)

    def _config_problem(self, claim: Claim, failure: Classification) -> None:
        # One global signal (metric + alert); the mailboxes themselves are fine.
        metrics.CLIENT_SECRET_VALID.set(0)
        metrics.CLIENT_CREDENTIAL_ERRORS.labels(
            _CONFIG_REASONS.get(failure.reason, "unknown_client")
        ).inc()
        self._pause(CONFIG_BACKOFF)
        with self._pool.connection() as conn:
            self._release(conn, claim, timedelta(seconds=CONFIG_BACKOFF), claim.failure_count + 1)

    def _transient(self, claim: Claim, failure: Classification) -> None:
        delay = backoff_seconds(claim.failure_count, failure.retry_after)
        if failure.retry_after:
            # A 429 throttles the whole client, not this one token.
            self._pause(failure.retry_after)
        with self._pool.connection() as conn:
            self._release(conn, claim, timedelta(seconds=delay), claim.failure_count + 1)

    def _release(
        self, conn: Connection[Any], claim: Claim, delay: timedelta, failures: int
    ) -> None:
        conn.execute(
            "UPDATE mailbox_tokens SET refresh_lease_until = NULL, refresh_due_at = now() + %s,"
            " failure_count = %s WHERE mailbox_id = %s AND generation = %s",
            (delay, failures, claim.mailbox_id, claim.generation),
        )

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def run_once(self) -> int:
        if time.monotonic() < self._paused_until:
            return 0
        claims = self.claim_due()
        for index, claim in enumerate(claims):
            if time.monotonic() < self._paused_until:
                # Throttled mid-batch: hand the rest back untouched.
                with self._pool.connection() as conn:
                    for rest in claims[index:]:
                        self._release(conn, rest, timedelta(0), rest.failure_count)
                break
            self.refresh_isolated(claim)
        return len(claims)

    def run_forever(self, stop: threading.Event, idle_wait: float = 1.0) -> None:
        """Refresh what is due; sleep until NOTIFY, the next poll, or stop."""
        listener = NotificationListener(self._settings.database_url, TOKEN_REFRESH_CHANNEL)
        while not stop.is_set():
            self.heartbeat.beat()
            try:
                busy = self.run_once() >= BATCH
            except Exception:
                log.exception("refresh_loop_error")
                busy = False
                stop.wait(2.0)
            if not busy:
                listener.wait(idle_wait)
        listener.close()
