"""The processor's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DOCUMENTS = Counter("bandeja_documents", "CRM documents written, by state", ["state"])
PROCESS_DURATION = Histogram(
    "bandeja_process_duration_seconds",
    "Time to parse one mail and write its document (its share of the batch transaction)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)
PROCESS_CRASHES = Counter(
    "bandeja_process_crashes",
    "Mails a processor was parsing when it died, counted by the one that took their message over",
)
BYTES_IN_FLIGHT = Gauge(
    "bandeja_process_bytes_in_flight", "Raw mail bytes being loaded and parsed right now"
)
for _state in ("processed", "failed", "too_large"):
    DOCUMENTS.labels(_state)
