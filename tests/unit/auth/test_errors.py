"""Identity failures are told apart by type, under the common tree, with their fields
(issue 18): the refresher, the admin API and dramatiq's retry policy branch on these."""

from __future__ import annotations

import pytest

from common.errors import ConfigurationError, PermanentError, ReauthRequired, TransientError
from common.settings import Settings
from services.auth.admin_credential import admin_token_matches
from services.auth.classify import classify_error, classify_http_status
from services.auth.errors import (
    ClientRejected,
    ConsentRequired,
    IdentityUnavailable,
    identity_failure,
)


@pytest.mark.parametrize(
    ("answer", "kind", "parent"),
    [
        ({"error": "invalid_grant", "error_codes": [70008]}, ConsentRequired, ReauthRequired),
        ({"error": "invalid_client", "error_codes": [7000222]}, ClientRejected, ConfigurationError),
        ({"error": "temporarily_unavailable"}, IdentityUnavailable, TransientError),
    ],
)
def test_each_class_of_answer_is_its_own_type(answer: dict, kind: type, parent: type) -> None:
    failure = identity_failure(classify_error(answer), "said the platform")
    assert type(failure) is kind
    assert isinstance(failure, parent)
    assert failure.aadsts == (answer.get("error_codes") or [None])[0]
    assert failure.description == "said the platform"


def test_a_throttled_answer_carries_its_retry_after() -> None:
    failure = identity_failure(classify_http_status(429, 42.0))
    assert isinstance(failure, IdentityUnavailable)
    assert not isinstance(failure, PermanentError)
    assert failure.retry_after == 42.0


def test_an_empty_admin_token_admits_nobody() -> None:
    """The one admin check: an unset token (a worker's settings) matches nothing, not
    even an empty Bearer; the configured one matches only itself."""
    unset = Settings(admin_token="")
    assert not admin_token_matches(unset, "")
    configured = Settings(admin_token="a" * 32)
    assert admin_token_matches(configured, "a" * 32)
    assert not admin_token_matches(configured, "a" * 31)
    assert not admin_token_matches(configured, "")
