"""Settings that would weaken the service are refused when they are read (issue 16)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_plain_imap_to_a_loopback_host_is_allowed(host: str) -> None:
    assert Settings(imap_tls=False, imap_host=host).imap_tls is False


@pytest.mark.parametrize("host", ["imap.example.com", "10.0.0.5", "outlook.office365.com", "::2"])
def test_plain_imap_to_any_other_host_is_refused(host: str) -> None:
    with pytest.raises(ValidationError, match="BANDEJA_IMAP_TLS=false is refused"):
        Settings(imap_tls=False, imap_host=host)


def test_admin_token_needs_32_characters_when_set() -> None:
    with pytest.raises(ValidationError, match="shorter than 32"):
        Settings(admin_token="x" * 31)
    assert Settings(admin_token="x" * 32).admin_token.get_secret_value() == "x" * 32
    assert Settings(admin_token="").admin_token.get_secret_value() == ""  # workers: unset


def test_a_rate_limit_limits_cannot_read_is_refused() -> None:
    with pytest.raises(ValidationError, match="rate limit"):
        Settings(public_rate_limit="many per day")
    assert [str(i) for i in Settings(public_rate_limit="5/minute;100/hour").public_rate_limits] == [
        "5 per 1 minute",
        "100 per 1 hour",
    ]
