"""The AADSTS classification table, one case per row (docs/architecture.md#identity-aadsts)."""

from __future__ import annotations

import pytest

from services.auth.classify import (
    AADSTS_TABLE,
    classify_error,
    classify_http_status,
    classify_network_error,
)

# (OAuth error, AADSTS code, expected class) written from docs/architecture.md#identity-aadsts,
# independently of the table in the code, so a wrong row fails here.
EXPECTED = [
    ("invalid_grant", 50173, "reauth"),
    ("invalid_grant", 70008, "reauth"),
    ("invalid_grant", 700082, "reauth"),
    ("invalid_grant", 700084, "reauth"),
    ("invalid_grant", 70043, "reauth"),
    ("interaction_required", 50076, "reauth"),
    ("interaction_required", 50079, "reauth"),
    ("interaction_required", 50072, "reauth"),
    ("interaction_required", 50074, "reauth"),
    ("interaction_required", 50078, "reauth"),
    ("invalid_grant", 65001, "reauth"),
    ("invalid_grant", 65004, "reauth"),
    ("invalid_grant", 50126, "reauth"),
    ("invalid_grant", 50055, "reauth"),
    ("invalid_grant", 50133, "reauth"),
    ("invalid_grant", 50132, "reauth"),
    ("invalid_grant", 90094, "admin"),
    ("invalid_grant", 90095, "admin"),
    ("invalid_grant", 50057, "admin"),
    ("invalid_grant", 50034, "admin"),
    ("invalid_grant", 53003, "admin"),
    ("interaction_required", 530003, "admin"),
    ("invalid_grant", 53000, "admin"),
    ("invalid_grant", 53001, "admin"),
    ("invalid_grant", 53002, "admin"),
    ("invalid_grant", 530032, "admin"),
    ("invalid_grant", 530035, "admin"),
    ("invalid_grant", 90072, "admin"),
    ("invalid_grant", 50020, "admin"),
    ("invalid_resource", 500011, "admin"),
    ("invalid_grant", 650052, "admin"),
    ("invalid_grant", 650054, "admin"),
    ("invalid_grant", 650056, "admin"),
    ("invalid_grant", 650057, "admin"),
    ("invalid_client", 7000215, "config"),
    ("invalid_client", 7000222, "config"),
    ("unauthorized_client", 700016, "config"),
    ("invalid_client", 700027, "config"),
    ("invalid_client", 50012, "config"),
    ("invalid_client", 700030, "config"),
    ("invalid_client", 700025, "config"),
    ("invalid_request", 9002313, "config"),
    ("invalid_scope", 70011, "config"),
    ("invalid_scope", 700022, "config"),
    ("invalid_scope", 28002, "config"),
    ("invalid_scope", 28003, "config"),
    ("invalid_request", 50011, "config"),
    ("invalid_request", 70004, "config"),
    ("invalid_request", 900971, "config"),
    ("invalid_grant", 54005, "config"),
    ("invalid_grant", 501481, "config"),
    ("invalid_request", 50194, "config"),
    ("invalid_request", 9001023, "config"),
    ("invalid_request", 90002, "config"),
    ("invalid_grant", 50053, "transient"),
    ("invalid_grant", 50196, "transient"),
    ("temporarily_unavailable", 90055, "transient"),
    ("temporarily_unavailable", 50033, "transient"),
    ("temporarily_unavailable", 50087, "transient"),
    ("temporarily_unavailable", 90006, "transient"),
    ("temporarily_unavailable", 90024, "transient"),
    ("temporarily_unavailable", 90033, "transient"),
    ("temporarily_unavailable", 90090, "transient"),
    ("temporarily_unavailable", 40010, "transient"),
]


@pytest.mark.parametrize(
    ("error", "code", "expected"), EXPECTED, ids=[str(c) for _, c, _ in EXPECTED]
)
def test_each_aadsts_code_is_classified(error: str, code: int, expected: str) -> None:
    """Each known AADSTS code leads to the action docs/architecture.md prescribes for it."""
    result = classify_error({"error": error, "error_codes": [code]})
    assert result.reason_class == expected
    assert result.aadsts == code


def test_every_table_row_has_a_case_here() -> None:
    """A row added to the table without a case in EXPECTED fails the build."""
    assert set(AADSTS_TABLE) == {code for _, code, _ in EXPECTED}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("invalid_grant", "reauth"),
        ("interaction_required", "reauth"),
        ("consent_required", "reauth"),
        ("invalid_client", "config"),
        ("unauthorized_client", "config"),
        ("temporarily_unavailable", "transient"),
        ("server_error", "transient"),
    ],
)
def test_unknown_codes_fall_back_to_the_oauth_error(error: str, expected: str) -> None:
    """Microsoft changes AADSTS numbers; an unknown one is classified by ``error``."""
    assert classify_error({"error": error, "error_codes": [99999999]}).reason_class == expected


def test_app_only_unknown_app_means_the_tenant_has_not_consented() -> None:
    """For client credentials, AADSTS700016 asks an administrator to consent."""
    result = classify_error(
        {"error": "unauthorized_client", "error_codes": [700016]}, app_only=True
    )
    assert result.reason_class == "admin"


def test_throttling_and_outages_are_transient_and_keep_retry_after() -> None:
    """429 and 5xx never change a mailbox's state, and Retry-After is kept."""
    assert classify_http_status(429, 30.0).retry_after == 30.0
    assert classify_http_status(503, None).reason_class == "transient"
    assert classify_network_error(TimeoutError()).reason_class == "transient"
