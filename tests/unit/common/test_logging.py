"""Secrets never reach the logs."""

from __future__ import annotations

from common.logging import REDACTED, SecretRedactor


def test_secret_keys_bearer_strings_and_jwts_are_masked() -> None:
    """Token-bearing keys, Bearer headers, JWTs and registered values are all redacted."""
    redactor = SecretRedactor(known_secrets=["s3cr3t-client-value"])
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    event = redactor(
        None,
        "info",
        {
            "event": f"calling with Bearer abcdefghijklmnop and {jwt}",
            "refresh_token": "0.AAAA-real-refresh",
            "nested": {"access_token": "xyz", "note": "secret is s3cr3t-client-value"},
            "error": "access_token=opaque123456 rejected",
        },
    )
    text = repr(event)
    for leaked in (
        "abcdefghijklmnop",
        jwt,
        "0.AAAA-real-refresh",
        "xyz",
        "s3cr3t-client-value",
        "opaque123456",
    ):
        assert leaked not in text
    assert event["refresh_token"] == REDACTED
