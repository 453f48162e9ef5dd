"""The auth service's errors, each under the common tree (common/errors.py)::

    BandejaError
    ├── TransientError
    │   └── IdentityUnavailable    the identity platform is down, slow or throttling us
    └── PermanentError
        ├── ReauthRequired
        │   └── ConsentRequired    a person must sign in again, or a tenant's admin consent
        └── ConfigurationError
            └── ClientRejected     the identity platform refuses our app id or secret

Each of the three is an :class:`IdentityFailure`: ``identity.py`` (the msal adapter) raises
them, built by :func:`identity_failure` from the row of ``classify.py``'s table the answer
matched; callers choose by type and read the fields (AADSTS code, Retry-After), never text.
"""

from __future__ import annotations

from common.errors import BandejaError, ConfigurationError, ReauthRequired, TransientError
from services.auth.classify import Classification


class IdentityFailure(BandejaError):
    """What the identity platform refused or failed to do, classified."""

    def __init__(self, classification: Classification, description: str = "") -> None:
        super().__init__(f"{classification.reason_class}:{classification.reason}")
        self.classification = classification
        self.description = description  # the platform's own words, for the log only
        self.aadsts = classification.aadsts

    @property
    def retry_after(self) -> float | None:
        return self.classification.retry_after


class IdentityUnavailable(IdentityFailure, TransientError):
    """Network, 5xx, 429: retry later (no sooner than ``retry_after`` when given)."""


class ConsentRequired(IdentityFailure, ReauthRequired):
    """Only a person can fix this: the user signs in again, or an admin consents."""


class ClientRejected(IdentityFailure, ConfigurationError):
    """Our client credentials (secret, app id) are refused: the operator must act."""


def identity_failure(classification: Classification, description: str = "") -> IdentityFailure:
    """The exception for a classified failure."""
    if classification.needs_person:
        return ConsentRequired(classification, description)
    if classification.reason_class == "config":
        return ClientRejected(classification, description)
    return IdentityUnavailable(classification, description)
