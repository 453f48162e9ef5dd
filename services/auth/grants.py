"""A newly granted token, sealed for storage: what a sign-in, an app-only registration
and a refresh all save in the same form."""

from __future__ import annotations

from datetime import UTC, datetime

from common.tokens import TokenCipher
from services.auth.identity import TokenResult
from services.auth.schedule import next_refresh_at
from services.auth.store.tokens import Grant


def sealed_grant(cipher: TokenCipher, result: TokenResult, *, delegated: bool) -> Grant:
    """Encrypt the tokens and schedule the refresh (jittered: a burst of sign-ins must not
    turn into a burst of refreshes). Only a delegated grant keeps a token cache of its
    own: an app-only mailbox shares its tenant's (:func:`sealed_app_cache`)."""
    now = datetime.now(UTC)
    return Grant(
        access_token=cipher.encrypt(result.access_token),
        access_expires_at=result.expires_at,
        refresh_due_at=next_refresh_at(now, result.expires_at),
        token_cache=cipher.encrypt(result.cache_state or "") if delegated else None,
        home_account_id=result.home_account_id if delegated else None,
    )


def sealed_app_cache(cipher: TokenCipher, result: TokenResult) -> bytes | None:
    """The tenant's app-only token cache to keep, when msal returned one."""
    return cipher.encrypt(result.cache_state) if result.cache_state else None
