"""The refresh loop: renews access tokens ahead of expiry, one refresher per token.

Replicas claim due tokens under a lease (``store/tokens.py``), so each token is refreshed
by exactly one of them at a time. The fetcher asks for a forced refresh by making a token
due now and sending NOTIFY; the loop wakes on it.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.db import TOKEN_REFRESH_CHANNEL, NotificationListener
from common.errors import ConfigurationError
from common.health import Heartbeat
from common.loops import Loop
from common.settings import Settings
from common.tokens import TokenCipher
from services.auth import metrics
from services.auth.classify import Classification
from services.auth.errors import (
    ClientRejected,
    ConsentRequired,
    IdentityFailure,
    IdentityUnavailable,
)
from services.auth.grants import sealed_app_cache, sealed_grant
from services.auth.id_token import signed_in_account
from services.auth.identity import IdentityClient, TokenResult
from services.auth.messages import human_message
from services.auth.schedule import CONFIG_BACKOFF, backoff_seconds
from services.auth.store import mailboxes, tenants, tokens
from services.auth.store.tokens import Claim

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=120)
BATCH = 20
FAR_FUTURE = timedelta(days=3650)

_CONFIG_REASONS = {
    "invalid_client_secret": "invalid_secret",
    "expired_client_secret": "expired_secret",
    "unknown_client": "unknown_client",
}


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
            return tokens.claim_due(conn, LEASE, limit)

    def refresh(self, claim: Claim) -> None:
        log.debug("token_refresh_started", mailbox_id=claim.mailbox_id, forced=claim.forced)
        try:
            result = self._acquire(claim)
        except IdentityFailure as failure:
            self._record_failure(claim, failure)
            return
        except ConfigurationError:  # the stored token no longer decrypts
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
                tokens.release(conn, claim, timedelta(seconds=delay), claim.failure_count + 1)

    def _acquire(self, claim: Claim) -> TokenResult:
        if claim.auth_kind == "app_only":
            # acquire_token_for_client cannot force a refresh; skipping the cached state
            # does, when IMAP refused a token msal still trusts.
            cached = None if claim.forced else self._app_cache(claim)
            return self._identity.app_only_token(claim.tenant_id, cached)
        if claim.token_cache is None:
            raise ConsentRequired(Classification("reauth", "consent_missing", "no_refresh_token"))
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
            moved = mailboxes.move_to_error(conn, claim.mailbox_id, reason, message)
            tokens.release(conn, claim, FAR_FUTURE, failures=claim.failure_count + 1)
        log.error("token_undecryptable", mailbox_id=claim.mailbox_id, moved_to_error=moved)

    def _record_success(self, claim: Claim, result: TokenResult) -> None:
        grant = sealed_grant(self._cipher, result, delegated=claim.auth_kind == "delegated")
        with self._pool.connection() as conn, conn.transaction():
            tokens.save_refreshed(conn, claim, grant)
            if claim.auth_kind == "delegated" and claim.object_id is None:
                self._learn_account(conn, claim, result)
            app_cache = sealed_app_cache(self._cipher, result)
            if claim.auth_kind == "app_only" and app_cache is not None:
                tenants.save_app_token_cache(conn, claim.tenant_id, app_cache)
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
        if mailboxes.learn_account(conn, claim.mailbox_id, claim.tenant_id, account.object_id):
            log.info("mailbox_account_recorded", mailbox_id=claim.mailbox_id)

    def _record_failure(self, claim: Claim, failure: IdentityFailure) -> None:
        c = failure.classification
        metrics.REFRESHES.labels("failure", c.reason_class).inc()
        log.warning(
            "token_refresh_failed",
            mailbox_id=claim.mailbox_id,
            reason_class=c.reason_class,
            reason=c.reason,
            error=c.error,
            aadsts=c.aadsts,
        )
        if isinstance(failure, ConsentRequired):
            self._needs_person(claim, c)
        elif isinstance(failure, ClientRejected):
            self._config_problem(claim, c)
        else:
            assert isinstance(failure, IdentityUnavailable)
            self._transient(claim, c)

    def _needs_person(self, claim: Claim, failure: Classification) -> None:
        reason = {"class": failure.reason_class, "error": failure.reason, "aadsts": failure.aadsts}
        # Encoded: an address may hold "+", which a raw query string reads as a space.
        query = urlencode({"login_hint": claim.address})
        reconnect = f"{self._settings.public_url}/connect?{query}"
        with self._pool.connection() as conn, conn.transaction():
            moved = mailboxes.move_to_needs_reauth(
                conn,
                claim.mailbox_id,
                reason,
                human_message(failure.reason, failure.reason_class),
                reconnect,
            )
            tokens.release(conn, claim, FAR_FUTURE, failures=claim.failure_count + 1)
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
            tokens.release(conn, claim, timedelta(seconds=CONFIG_BACKOFF), claim.failure_count + 1)

    def _transient(self, claim: Claim, failure: Classification) -> None:
        delay = backoff_seconds(claim.failure_count, failure.retry_after)
        if failure.retry_after:
            # A 429 throttles the whole client, not this one token.
            self._pause(failure.retry_after)
        with self._pool.connection() as conn:
            tokens.release(conn, claim, timedelta(seconds=delay), claim.failure_count + 1)

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
                        tokens.release(conn, rest, timedelta(0), rest.failure_count)
                break
            self.refresh_isolated(claim)
        return len(claims)

    def run_forever(self, stop: threading.Event, idle_wait: float = 1.0) -> None:
        """Refresh what is due; sleep until NOTIFY, the next poll, or stop."""
        listener = NotificationListener(self._settings.database_url, TOKEN_REFRESH_CHANNEL)
        loop = Loop(
            "refresh",
            work=lambda: self.run_once() >= BATCH,
            idle_wait=idle_wait,
            wake=listener.wait,
            heartbeat=self.heartbeat,
            error_event="refresh_loop_error",
        )
        try:
            loop.run(stop)
        finally:
            listener.close()
