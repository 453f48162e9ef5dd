"""Which requests share a rate-limit budget (services/auth/rate_limit.py)."""

from __future__ import annotations

from services.auth.rate_limit import client_key


def test_one_key_per_ipv4_address() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("203.0.113.7") != client_key("203.0.113.8")


def test_one_key_per_ipv6_slash_64() -> None:
    """One host or customer line gets a whole /64: its addresses share one budget."""
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")


def test_ipv4_mapped_ipv6_counts_as_the_ipv4_address() -> None:
    assert client_key("::ffff:203.0.113.7") == client_key("203.0.113.7")


def test_missing_or_odd_peers_share_one_key() -> None:
    assert client_key(None) == client_key("") == client_key("unix-socket") == "unknown"
