"""Auth's scrape-time metrics: nothing invented when a value is unknown."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from services.auth.metrics import ClientSecretExpiryCollector, TokenHealthCollector


def _exposition(collector: object) -> str:
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_an_unset_secret_expiry_exports_no_series() -> None:
    """BANDEJA_CLIENT_SECRET_EXPIRES_AT unset: no expiry series (a 0 would read as
    "expired in 1970" and page); set: its unix time."""
    expiry = ClientSecretExpiryCollector()
    assert "bandeja_client_secret_expiry_timestamp_seconds " not in _exposition(expiry)
    expiry.set(1_800_000_000.0)
    assert "bandeja_client_secret_expiry_timestamp_seconds 1.8e+09" in _exposition(expiry)


def test_token_health_reports_the_database_and_drops_stale_states() -> None:
    """Nothing before the first sample; the states with database_up 1 after a good one;
    database_up 0 and no states (not the last ones, repeated) when the database is away."""
    health = TokenHealthCollector()
    assert "bandeja_" not in _exposition(health).replace("# HELP", "").replace("# TYPE", "")
    health.update({"states": {"active": 3}, "earliest_expiry_seconds": 120.0})
    text = _exposition(health)
    assert "bandeja_database_up 1.0" in text
    assert 'bandeja_mailboxes{state="active"} 3.0' in text
    assert "bandeja_token_earliest_expiry_seconds 120.0" in text
    health.update(None)
    text = _exposition(health)
    assert "bandeja_database_up 0.0" in text
    assert "bandeja_mailboxes{" not in text
    assert "bandeja_token_earliest_expiry_seconds " not in text
