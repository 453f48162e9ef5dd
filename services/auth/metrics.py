"""The auth service's metrics. No address, token or tenant string is ever a label value."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
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
CLIENT_SECRET_EXPIRY = Gauge(
    "bandeja_client_secret_expiry_timestamp_seconds",
    "When the configured client secret expires (unix time)",
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
    """Reads mailbox states and the earliest token expiry from the database at scrape time."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            snap = self._snapshot()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the DB is down
            return
        states = GaugeMetricFamily("bandeja_mailboxes", "Mailboxes by state", labels=["state"])
        for state in MAILBOX_STATES:
            states.add_metric([state], snap["states"].get(state, 0))
        yield states
        if snap.get("earliest_expiry_seconds") is not None:
            yield GaugeMetricFamily(
                "bandeja_token_earliest_expiry_seconds",
                "Seconds until the earliest access-token expiry among active mailboxes",
                value=snap["earliest_expiry_seconds"],
            )
