"""The auth service's metrics. No address, token or tenant string is ever a label value."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REFRESHES = Counter("bandeja_token_refresh", "Token refresh attempts", ["result", "reason_class"])
REAUTH_NEEDED = Counter(
    "bandeja_reauth_needed", "Mailboxes moved to needs_reauth", ["reason_class"]
)
CLIENT_CREDENTIAL_ERRORS = Counter(
    "bandeja_client_credential_errors",
    "The identity platform rejected the application's own credential",
    ["reason"],
)
CLIENT_SECRET_VALID = Gauge(
    "bandeja_client_secret_valid", "1 unless the last token call rejected the app's credential"
)
TOKENS_UNDECRYPTABLE = Counter(
    "bandeja_token_undecryptable",
    "Stored tokens no key in BANDEJA_TOKEN_KEYS decrypts (the mailbox goes to error)",
)
HTTP_REQUESTS = Counter(
    "bandeja_http_requests", "HTTP requests served", ["route", "method", "status"]
)
HTTP_DURATION = Histogram("bandeja_http_request_duration_seconds", "HTTP latency", ["route"])

MAILBOX_STATES = ("active", "needs_reauth", "paused", "disconnected", "error")

for _cls in ("none", "reauth", "admin", "config", "transient"):
    REFRESHES.labels("success" if _cls == "none" else "failure", _cls)
for _cls in ("reauth", "admin"):
    REAUTH_NEEDED.labels(_cls)
for _reason in ("invalid_secret", "expired_secret", "unknown_client"):
    CLIENT_CREDENTIAL_ERRORS.labels(_reason)
CLIENT_SECRET_VALID.set(1)


class TokenHealthCollector(Collector):
    """Exports the latest mailbox-state snapshot taken in the background
    (services/auth/token_health.py): a scrape never waits on PostgreSQL, so neither does
    the event loop that answers /healthz.

    Before the first snapshot nothing is exported; once PostgreSQL is unreachable,
    ``bandeja_database_up`` is 0 and the state gauges are dropped rather than repeated
    stale."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sampled = False
        self._snapshot: dict[str, Any] | None = None

    def update(self, snapshot: dict[str, Any] | None) -> None:
        """The newest snapshot, or None when the database did not answer."""
        with self._lock:
            self._sampled = True
            self._snapshot = snapshot

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("bandeja_database_up", _DATABASE_UP_HELP)
        yield GaugeMetricFamily("bandeja_mailboxes", _MAILBOXES_HELP, labels=["state"])
        yield GaugeMetricFamily("bandeja_token_earliest_expiry_seconds", _EARLIEST_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            sampled, snap = self._sampled, self._snapshot
        if not sampled:
            return
        yield GaugeMetricFamily(
            "bandeja_database_up", _DATABASE_UP_HELP, value=int(snap is not None)
        )
        if snap is None:
            return
        states = GaugeMetricFamily("bandeja_mailboxes", _MAILBOXES_HELP, labels=["state"])
        for state in MAILBOX_STATES:
            states.add_metric([state], snap["states"].get(state, 0))
        yield states
        if snap.get("earliest_expiry_seconds") is not None:
            yield GaugeMetricFamily(
                "bandeja_token_earliest_expiry_seconds",
                _EARLIEST_HELP,
                value=snap["earliest_expiry_seconds"],
            )


_DATABASE_UP_HELP = "1 when auth's last background read of PostgreSQL answered, else 0"
_MAILBOXES_HELP = "Mailboxes by state"
_EARLIEST_HELP = "Seconds until the earliest access-token expiry among active mailboxes"


class ClientSecretExpiryCollector(Collector):
    """When the configured client secret expires. Exports nothing while
    BANDEJA_CLIENT_SECRET_EXPIRES_AT is unset: an unknown expiry is not "expired at 0",
    which would page as imminent."""

    _NAME = "bandeja_client_secret_expiry_timestamp_seconds"
    _HELP = "When the configured client secret expires (unix time); absent when not configured"

    def __init__(self) -> None:
        self._expires_at: float | None = None

    def set(self, unix_time: float) -> None:
        self._expires_at = unix_time

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._NAME, self._HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._expires_at is not None:
            yield GaugeMetricFamily(self._NAME, self._HELP, value=self._expires_at)


TOKEN_HEALTH = TokenHealthCollector()
CLIENT_SECRET_EXPIRY = ClientSecretExpiryCollector()
REGISTRY.register(TOKEN_HEALTH)
REGISTRY.register(CLIENT_SECRET_EXPIRY)
