"""Every identity-platform failure, sorted into what has to happen next.

One table, one test per row (tests/unit/auth/test_classify.py). Microsoft warns that
AADSTS numbers change over time (docs/architecture.md#identity-aadsts), so the OAuth ``error``
decides when the code is unknown; the code only refines.

- ``reauth``: a person must sign in / consent again.
- ``admin``: a tenant administrator must act (consent, conditional access, account).
- ``config``: the operator's set-up is wrong (client secret, app id, redirect URI, bug).
  One global signal, never thousands of mailbox alerts.
- ``transient``: retry with backoff honouring Retry-After; no state change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ReasonClass = Literal["reauth", "admin", "config", "transient"]

# AADSTS code -> (class, short reason key), from docs/architecture.md#identity-aadsts.
AADSTS_TABLE: dict[int, tuple[ReasonClass, str]] = {
    50173: ("reauth", "grant_revoked"),  # FreshTokenNeeded: tokens revoked, password reset
    70008: ("reauth", "refresh_token_expired"),  # ExpiredOrRevokedGrant (inactivity)
    700082: ("reauth", "refresh_token_expired"),  # inactive for 90 days
    700084: ("reauth", "refresh_token_expired"),  # SPA 24 h lifetime
    70043: ("reauth", "sign_in_frequency"),  # conditional access sign-in frequency
    50076: ("reauth", "mfa_required"),
    50079: ("reauth", "mfa_enrollment_required"),
    50072: ("reauth", "mfa_enrollment_required"),
    50074: ("reauth", "mfa_required"),
    50078: ("reauth", "mfa_required"),
    65001: ("reauth", "consent_missing"),  # DelegationDoesNotExist
    65004: ("reauth", "consent_declined"),
    50126: ("reauth", "bad_credentials"),
    50055: ("reauth", "password_expired"),
    50133: ("reauth", "password_changed"),
    50132: ("reauth", "password_changed"),
    90094: ("admin", "admin_consent_required"),
    90095: ("admin", "admin_consent_required"),
    50057: ("admin", "user_disabled"),
    50034: ("admin", "user_not_found"),
    53003: ("admin", "conditional_access"),
    530003: ("admin", "conditional_access"),  # managed device required
    53000: ("admin", "conditional_access"),
    53001: ("admin", "conditional_access"),
    53002: ("admin", "conditional_access"),
    530032: ("admin", "conditional_access"),
    530035: ("admin", "conditional_access"),
    90072: ("admin", "user_not_in_tenant"),
    50020: ("admin", "user_not_in_tenant"),
    500011: ("admin", "resource_not_in_tenant"),
    650052: ("admin", "tenant_lacks_service"),
    650054: ("admin", "app_permissions"),
    650056: ("admin", "app_permissions"),
    650057: ("admin", "app_permissions"),
    7000215: ("config", "invalid_client_secret"),
    7000222: ("config", "expired_client_secret"),
    700016: ("config", "unknown_client"),
    700027: ("config", "invalid_client_certificate"),
    50012: ("config", "invalid_client_certificate"),
    700030: ("config", "invalid_client_certificate"),
    700025: ("config", "public_client_secret"),
    9002313: ("config", "malformed_request"),
    70011: ("config", "invalid_scope"),
    700022: ("config", "invalid_scope"),
    28002: ("config", "invalid_scope"),
    28003: ("config", "invalid_scope"),
    50011: ("config", "redirect_uri_mismatch"),
    70004: ("config", "redirect_uri_mismatch"),
    900971: ("config", "redirect_uri_mismatch"),
    54005: ("config", "code_already_redeemed"),
    501481: ("config", "pkce_mismatch"),
    50194: ("config", "wrong_authority"),
    9001023: ("config", "wrong_authority"),
    90002: ("config", "tenant_not_found"),
    50053: ("transient", "account_locked"),  # the lock expires by itself
    50196: ("transient", "loop_detected"),
    90055: ("transient", "tenant_throttled"),
    50033: ("transient", "retryable"),
    50087: ("transient", "retryable"),
    90006: ("transient", "retryable"),
    90024: ("transient", "retryable"),
    90033: ("transient", "retryable"),
    90090: ("transient", "retryable"),
    40010: ("transient", "retryable"),
}

# OAuth ``error`` -> class, for codes the table does not know.
ERROR_TABLE: dict[str, ReasonClass] = {
    "invalid_grant": "reauth",
    "interaction_required": "reauth",
    "consent_required": "reauth",
    "login_required": "reauth",
    "access_denied": "reauth",
    "invalid_client": "config",
    "unauthorized_client": "config",
    "invalid_request": "config",
    "invalid_scope": "config",
    "unsupported_grant_type": "config",
    "invalid_resource": "config",
    "temporarily_unavailable": "transient",
    "server_error": "transient",
}

# For the client-credentials grant, an app missing from a tenant means the tenant's
# administrator has not consented, not that our app id is wrong
# (docs/architecture.md#identity-claims).
APP_ONLY_OVERRIDES: dict[int, tuple[ReasonClass, str]] = {
    700016: ("admin", "admin_consent_required"),
}


@dataclass(frozen=True)
class Classification:
    reason_class: ReasonClass
    reason: str
    error: str
    aadsts: int | None = None
    retry_after: float | None = None

    @property
    def needs_person(self) -> bool:
        return self.reason_class in ("reauth", "admin")

    @property
    def admin_can_fix(self) -> bool:
        """A tenant administrator's consent is what is missing (the page links to it)."""
        return self.reason_class == "admin" or self.reason in (
            "admin_consent_required",
            "consent_missing",
        )


def classify_error(result: dict[str, Any], *, app_only: bool = False) -> Classification:
    """Classify an msal error dict (the identity platform's JSON error, unchanged)."""
    error = str(result.get("error") or "unknown_error")
    codes = result.get("error_codes") or []
    aadsts = int(codes[0]) if codes else None
    row = None
    if aadsts is not None:
        row = (APP_ONLY_OVERRIDES.get(aadsts) if app_only else None) or AADSTS_TABLE.get(aadsts)
    if row is not None:
        return Classification(row[0], row[1], error, aadsts)
    reason_class = ERROR_TABLE.get(error, "transient")
    return Classification(reason_class, error, error, aadsts)


def classify_http_status(status: int, retry_after: float | None) -> Classification:
    """429 and 5xx from the token endpoint: the service is busy or broken, not our tokens."""
    reason = "throttled" if status == 429 else "service_unavailable"
    return Classification("transient", reason, f"http_{status}", None, retry_after)


def classify_network_error(exc: BaseException) -> Classification:
    return Classification("transient", "network", type(exc).__name__)
