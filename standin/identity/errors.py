"""Microsoft-shaped OAuth errors: the JSON body of the token endpoint and the redirect query.

Texts follow the public AADSTS reference (reference-error-codes.md) closely enough for
classifiers that branch on `error`, `suberror` and `error_codes[0]`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

AADSTS_TEXT: dict[int, str] = {
    50020: "User account from identity provider does not exist in tenant and cannot access the "
    "application in that tenant.",
    50034: "The user account does not exist in the directory. To sign into this application, "
    "the account must be added to the directory.",
    50076: "Due to a configuration change made by your administrator, or because you moved to a "
    "new location, you must use multi-factor authentication to access the resource.",
    50173: "The provided grant has expired due to it being revoked, a fresh auth token is needed. "
    "The user might have changed or reset their password. The grant was issued on "
    "'{issued}' and the TokensValidFrom date (before which tokens are not valid) for this "
    "user is '{valid_from}'.",
    53003: "Access has been blocked by Conditional Access policies. The access policy does not "
    "allow token issuance.",
    54005: "OAuth2 Authorization code was already redeemed, please retry with a new valid code "
    "or use an existing refresh token.",
    65004: "User declined to consent to access the app.",
    70000: "The provided value for the 'code' parameter is not valid.",
    70008: "The provided authorization code or refresh token has expired due to inactivity. "
    "Send a new interactive authorization request for this user and resource.",
    700016: "Application with identifier '{client_id}' was not found in the directory "
    "'{tenant}'. This can happen if the application has not been installed by the "
    "administrator of the tenant or consented to by any user in the tenant. You may have sent "
    "your authentication request to the wrong tenant.",
    700082: "The refresh token has expired due to inactivity. The token was issued on "
    "'{issued}' and was inactive for 90.00:00:00.",
    7000215: "Invalid client secret provided. Ensure the secret being sent in the request is "
    "the client secret value, not the client secret ID, for a secret added to app "
    "'{client_id}'.",
    7000222: "The provided client secret keys for app '{client_id}' are expired. Visit the "
    "Azure portal to create new keys for your app, or consider using certificate credentials "
    "for added security.",
    90002: "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
    "are signing into the correct cloud.",
    90094: "Admin consent is required for the permissions requested by this application. An "
    "admin consent request may be sent to the admin.",
    9001023: "The grant type is not supported over the /common or /consumers endpoints. "
    "Please use the /organizations or tenant-specific endpoint.",
    9002313: "Invalid request. Request is malformed or invalid.",
    900144: "The request body must contain the following parameter: '{param}'.",
    50011: "The redirect URI '{redirect_uri}' specified in the request does not match the "
    "redirect URIs configured for the application '{client_id}'.",
    501481: "The Code_Verifier does not match the code_challenge supplied in the authorization "
    "request.",
    1002012: "The provided value for scope {scope} is not valid. Client credential flows must "
    "have a scope value with /.default suffixed to the resource identifier "
    "(application ID URI).",
    70011: "The provided request must include a 'scope' input parameter. The provided value "
    "for the input parameter 'scope' is not valid.",
    90055: "TenantThrottlingError: There are too many incoming requests. This exception is "
    "thrown for blocked tenants.",
    50058: "A silent sign-in request was sent but no user is signed in.",
    7000218: "The request body must contain the following parameter: 'client_assertion' or "
    "'client_secret'.",
    70003: "The app requested an unsupported grant type '{grant_type}'.",
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aadsts_text(code: int, **params: str) -> str:
    template = AADSTS_TEXT.get(code, "Error.")
    try:
        return f"AADSTS{code}: " + template.format(**params)
    except KeyError:
        return f"AADSTS{code}: {template}"


@dataclass
class OAuthError(Exception):
    """One Microsoft error; `status` is the HTTP status for the token endpoint."""

    error: str
    code: int
    status: int = 400
    suberror: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        now = _now()
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"{aadsts_text(self.code, **self.params)}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
        )
        body: dict[str, Any] = {
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        if self.suberror:
            body["suberror"] = self.suberror
        return body

    def redirect_params(self) -> dict[str, str]:
        """The query parameters an /authorize error carries back to the redirect URI."""
        params = {
            "error": self.error,
            "error_description": aadsts_text(self.code, **self.params),
        }
        if self.suberror:
            params["error_subcode"] = self.suberror
        return params


def invalid_client_secret(client_id: str) -> OAuthError:
    return OAuthError("invalid_client", 7000215, status=401, params={"client_id": client_id})


def expired_client_secret(client_id: str) -> OAuthError:
    return OAuthError("invalid_client", 7000222, status=401, params={"client_id": client_id})


def unknown_client(client_id: str, tenant: str) -> OAuthError:
    return OAuthError(
        "unauthorized_client", 700016, params={"client_id": client_id, "tenant": tenant}
    )


def missing_parameter(name: str) -> OAuthError:
    return OAuthError("invalid_request", 900144, params={"param": name})
