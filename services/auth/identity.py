"""The only code that talks to the Microsoft identity platform, through msal.

msal answers with dicts for OAuth errors and raises for everything else
(docs/architecture.md#msal-errors);
this adapter turns both into :class:`TokenResult` or one of ``errors.py``'s
:class:`IdentityFailure` types, once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msal
import requests
import structlog
from msal.exceptions import MsalServiceError

from common.http import https_session
from common.settings import APP_ONLY_IMAP_SCOPE, DELEGATED_IMAP_SCOPE, Settings
from services.auth.classify import (
    Classification,
    classify_error,
    classify_http_status,
    classify_network_error,
)
from services.auth.errors import identity_failure
from services.auth.id_token import IdTokenVerifier, InvalidIdToken, SigningKeysUnavailable

log = structlog.get_logger(__name__)


@dataclass
class TokenResult:
    access_token: str
    expires_at: datetime
    cache_state: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    home_account_id: str | None = None


class _RetryAfterRecorder:
    """Remembers the last Retry-After seen by this thread: msal drops response headers."""

    def __init__(self) -> None:
        self._local = threading.local()

    def hook(self, response: requests.Response, *_: Any, **__: Any) -> None:
        self._local.value = _seconds(response.headers.get("Retry-After"))
        self._local.status = response.status_code

    def take(self) -> tuple[int | None, float | None]:
        status, value = getattr(self._local, "status", None), getattr(self._local, "value", None)
        self._local.status = self._local.value = None
        return status, value


def _seconds(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None


class IdentityClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._retry_after = _RetryAfterRecorder()
        self._session = https_session(settings.ca_bundle)
        self._session.hooks["response"].append(self._retry_after.hook)
        # Shared so discovery documents are fetched once a day, not on every refresh.
        self._http_cache: dict[Any, Any] = {}
        self._id_tokens = IdTokenVerifier(
            self._session, settings.authority_host, settings.sign_in_tenant, settings.client_id
        )

    def app(
        self, tenant: str, cache: msal.SerializableTokenCache | None = None
    ) -> msal.ConfidentialClientApplication:
        """A msal application for ``tenant``; building it performs discovery (network)."""
        try:
            return msal.ConfidentialClientApplication(
                self._settings.client_id,
                client_credential=self._settings.client_secret.get_secret_value(),
                authority=f"{self._settings.authority_host}/{tenant}",
                # Instance discovery asks login.microsoftonline.com about the host, which
                # a sovereign cloud or a private stand-in is not listed in.
                instance_discovery=False,
                token_cache=cache,
                http_client=self._session,
                http_cache=self._http_cache,
            )
        except (requests.RequestException, ValueError) as exc:
            raise identity_failure(classify_network_error(exc), str(exc)) from exc
        except MsalServiceError as exc:  # discovery answered 5xx
            seen_status, retry_after = self._retry_after.take()
            raise identity_failure(
                classify_http_status(seen_status or 503, retry_after), str(exc)
            ) from exc

    def start_sign_in(self, login_hint: str | None) -> dict[str, Any]:
        flow: dict[str, Any] = self.app(self._settings.sign_in_tenant).initiate_auth_code_flow(
            [DELEGATED_IMAP_SCOPE],
            redirect_uri=self._settings.redirect_uri,
            login_hint=login_hint or None,
        )
        return flow

    def finish_sign_in(self, flow: dict[str, Any], response: dict[str, str]) -> TokenResult:
        cache = msal.SerializableTokenCache()
        app = self.app(self._settings.sign_in_tenant, cache)
        result = self._call(
            lambda: app.acquire_token_by_auth_code_flow(flow, response), app_only=False
        )
        try:
            claims = self._id_tokens.verify(result.get("id_token"))
        except SigningKeysUnavailable as exc:
            raise identity_failure(
                Classification("transient", "network", "signing_keys_unavailable"), str(exc)
            ) from exc
        except InvalidIdToken as exc:
            raise identity_failure(
                Classification("config", "id_token_invalid", "invalid_id_token"), str(exc)
            ) from exc
        accounts = app.get_accounts()
        return TokenResult(
            access_token=result["access_token"],
            expires_at=_expiry(result),
            cache_state=cache.serialize(),
            claims=claims,
            home_account_id=accounts[0]["home_account_id"] if accounts else None,
        )

    def refresh_delegated(
        self, tenant: str, cache_state: str, home_account_id: str | None
    ) -> TokenResult:
        cache = msal.SerializableTokenCache()
        cache.deserialize(cache_state)
        app = self.app(tenant, cache)
        accounts = [
            a
            for a in app.get_accounts()
            if not home_account_id or a["home_account_id"] == home_account_id
        ]
        if not accounts:
            raise identity_failure(
                Classification("reauth", "consent_missing", "no_refresh_token"),
                "no account in the token cache",
            )

        def call() -> dict[str, Any] | None:
            # force_refresh: the fetcher asks only when the token is due or IMAP refused it;
            # msal would otherwise hand back a cached token it still trusts
            # (docs/architecture.md#msal-objects).
            result: dict[str, Any] | None = app.acquire_token_silent_with_error(
                [DELEGATED_IMAP_SCOPE], accounts[0], force_refresh=True
            )
            return result

        result = self._call(call, app_only=False)
        return TokenResult(
            access_token=result["access_token"],
            expires_at=_expiry(result),
            cache_state=cache.serialize() if cache.has_state_changed else cache_state,
            claims=self._refreshed_claims(result),
            home_account_id=accounts[0]["home_account_id"],
        )

    def _refreshed_claims(self, result: dict[str, Any]) -> dict[str, Any]:
        """A refresh's id_token names the account (rows connected before object ids were
        kept learn theirs from it); one that fails validation is ignored, not the refresh."""
        if not result.get("id_token"):
            return {}
        try:
            return self._id_tokens.verify(result["id_token"])
        except (InvalidIdToken, SigningKeysUnavailable) as exc:
            log.warning("refresh_id_token_ignored", error=str(exc))
            return {}

    def app_only_token(self, tenant: str, cache_state: str | None) -> TokenResult:
        cache = msal.SerializableTokenCache()
        if cache_state:
            cache.deserialize(cache_state)
        app = self.app(tenant, cache)
        result = self._call(
            lambda: app.acquire_token_for_client([APP_ONLY_IMAP_SCOPE]), app_only=True
        )
        return TokenResult(
            access_token=result["access_token"],
            expires_at=_expiry(result),
            cache_state=cache.serialize(),
        )

    def _call(self, fn: Any, *, app_only: bool) -> dict[str, Any]:
        self._retry_after.take()
        try:
            result = fn()
        except requests.HTTPError as exc:  # msal raises for 5xx
            response = exc.response
            http_status = response.status_code if response is not None else 503
            wait = _seconds(response.headers.get("Retry-After")) if response is not None else None
            raise identity_failure(classify_http_status(http_status, wait)) from exc
        except (requests.RequestException, ValueError) as exc:
            # ValueError: a non-JSON body (a plain-text 429) fails msal's json.loads.
            seen_status, retry_after = self._retry_after.take()
            if seen_status is not None and (seen_status == 429 or seen_status >= 500):
                raise identity_failure(classify_http_status(seen_status, retry_after)) from exc
            raise identity_failure(classify_network_error(exc), str(exc)) from exc
        except MsalServiceError as exc:
            # msal raises ("HTTP Error: 503") instead of returning when the token endpoint
            # answers 5xx; a response msal replays from its own throttling cache was not
            # seen by our hook, hence the 503 default.
            seen_status, retry_after = self._retry_after.take()
            raise identity_failure(
                classify_http_status(seen_status or 503, retry_after), str(exc)
            ) from exc
        except RuntimeError as exc:
            # msal's id_token checks (nonce, issuer, audience) raise RuntimeError and its
            # subclasses: the answer is not for this sign-in, so nothing of it is kept.
            invalid = Classification("reauth", "invalid_id_token", "invalid_id_token")
            raise identity_failure(invalid, type(exc).__name__) from exc
        if result is None:
            raise identity_failure(
                Classification("reauth", "consent_missing", "no_refresh_token"), "cache empty"
            )
        if "error" in result:
            seen_status, retry_after = self._retry_after.take()
            if seen_status == 429:
                raise identity_failure(classify_http_status(429, retry_after))
            classification = classify_error(result, app_only=app_only)
            raise identity_failure(classification, str(result.get("error_description", ""))[:500])
        return dict(result)


def _expiry(result: dict[str, Any]) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=int(result.get("expires_in", 3600)))
