"""The fetcher's metrics: aggregates only, never one series per mailbox."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FETCH_RUNS = Counter("bandeja_fetch_runs", "Fetch runs by result", ["result"])
FETCH_DURATION = Histogram(
    "bandeja_fetch_duration_seconds",
    "Duration of one mailbox fetch run",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
MESSAGES_FETCHED = Counter("bandeja_messages_fetched", "Mails stored from IMAP")
BYTES_FETCHED = Counter("bandeja_bytes_fetched", "Bytes of mail stored from IMAP")
IMAP_ERRORS = Counter("bandeja_imap_errors", "IMAP failures by kind", ["kind"])
THROTTLE_WAIT = Counter(
    "bandeja_imap_throttle_wait_seconds", "Seconds spent backing off after IMAP throttling"
)
UNREAD_BACKLOG = Gauge(
    "bandeja_unread_backlog", "Unread mails seen on the server and not yet stored"
)
FETCH_AGE_MAX = Gauge(
    "bandeja_mailbox_fetch_age_max_seconds",
    "Largest time since an active mailbox's last successful fetch",
)
FETCH_AGE = Histogram(
    "bandeja_mailbox_fetch_age_seconds",
    "Time since each active mailbox's last successful fetch, observed every 15 s",
    buckets=(30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
IDLE_SESSIONS = Gauge("bandeja_idle_sessions", "IMAP IDLE sessions this process holds")
IDLE_WAKEUPS = Counter("bandeja_idle_wakeups", "New-mail notices received over IDLE")
SESSIONS_PARKED = Gauge(
    "bandeja_imap_sessions_parked", "Logged-in IMAP sessions kept for the next fetch run"
)
SESSIONS_REUSED = Counter(
    "bandeja_imap_session_reuse",
    "Parked sessions taken for a fetch run: reused, or found closed by the server",
    ["result"],
)
SCHEDULER_ENQUEUED = Counter("bandeja_scheduler_enqueued", "fetch_mailbox messages enqueued")

RESULTS = ("ok", "error", "throttled", "token_rejected", "skipped")
IMAP_ERROR_KINDS = (
    "auth",
    "throttled",
    "bye",
    "timeout",
    "connection",
    "protocol",
    "mailbox_unavailable",
)
for _reuse in ("reused", "dead"):
    SESSIONS_REUSED.labels(_reuse)
for _result in RESULTS:
    FETCH_RUNS.labels(_result)
for _kind in IMAP_ERROR_KINDS:
    IMAP_ERRORS.labels(_kind)
