"""What follows a failed fetch run or IDLE session: one pure decision from the error's
type and the mailbox's recent failures.

The IMAP adapter (imap.py) has already turned whatever went wrong into a typed error
(errors.py); this module never reads text. Fetch runs (fetch.py) and IDLE watchers
(idle.py) act on the same :class:`Decision`: ask auth for a forced refresh, make the whole
tenant wait, drop the session without a LOGOUT, move the mailbox to ``error``, and when to
try again. Only the pause differs by who failed: a fetch run is retried by the scheduler
from the mailbox row, a watcher re-opens its own session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.errors import BandejaError, MailboxUnavailable, Throttled, TokenNotReady
from services.fetcher.errors import (
    ConnectionDropped,
    ProtocolViolation,
    TenantBusy,
    TokenRejected,
)

# The label of a fetch run's outcome (bandeja_fetch_runs_total{result}).
RunResult = Literal["throttled", "skipped", "token_rejected", "error"]
# The label of an IMAP failure (bandeja_imap_errors_total{kind}).
ErrorKind = Literal[
    "throttled", "auth", "mailbox_unavailable", "bye", "timeout", "connection", "protocol"
]


@dataclass(frozen=True)
class History:
    """What the policy needs to know of the mailbox besides the error."""

    # Failures in a row before this one (the mailbox row's error_count for a fetch run,
    # the watcher's own count for an IDLE session).
    failures: int
    # This many failures in a row of a mailbox that is gone or denies access move it to
    # ``error`` (BANDEJA_MAILBOX_ERROR_THRESHOLD); None: never (an IDLE watcher leaves
    # that to the fetch runs).
    error_threshold: int | None = None


@dataclass(frozen=True)
class Decision:
    retry_in: float  # seconds until the next attempt
    result: RunResult
    error_kind: ErrorKind | None = None  # None: not an IMAP failure worth counting
    request_token_refresh: bool = False
    throttle_tenant_seconds: float = 0.0  # > 0: the whole tenant waits this long
    move_to_error: bool = False


def ends_without_logout(error: BaseException) -> bool:
    """Drop the session without a LOGOUT: the server asked for silence for the suggested
    time, or sent what cannot be read past (a LOGOUT would read the rest of it)."""
    return isinstance(error, Throttled | ProtocolViolation)


def after_fetch_failure(error: BandejaError, history: History) -> Decision:
    """A failed fetch run: its result label, what to record, when the scheduler retries."""
    if isinstance(error, TenantBusy):
        result: RunResult = "throttled" if error.wait > 1.0 else "skipped"
        return Decision(retry_in=error.wait, result=result)
    if common := _throttle_or_token(error):
        return common
    backoff = min(300.0, 5.0 * 2 ** min(history.failures, 6))
    if isinstance(error, ConnectionDropped):
        # A dropped session is usually fine again at once (Exchange's random BYEs).
        backoff = min(1.0 * 2 ** min(history.failures, 5), 30.0)
    return Decision(
        retry_in=backoff,
        result="error",
        error_kind=_error_kind(error),
        move_to_error=_gone_for_good(error, history),
    )


def after_idle_failure(error: BandejaError, history: History) -> Decision:
    """A failed IDLE session: how long the watcher waits before opening another."""
    if common := _throttle_or_token(error):
        return common
    backoff = float(min(60.0, 2.0 * 2 ** min(history.failures + 1, 5)))
    return Decision(
        retry_in=backoff,
        result="error",
        error_kind=_error_kind(error),
        move_to_error=_gone_for_good(error, history),
    )


def _throttle_or_token(error: BandejaError) -> Decision | None:
    if isinstance(error, Throttled):
        return Decision(
            retry_in=max(error.backoff_seconds, 1.0),
            result="throttled",
            error_kind="throttled",
            throttle_tenant_seconds=error.backoff_seconds,
        )
    if isinstance(error, TokenRejected):
        # Auth is asked for a forced refresh; look again as soon as it can be done.
        return Decision(
            retry_in=2.0, result="token_rejected", error_kind="auth", request_token_refresh=True
        )
    if isinstance(error, TokenNotReady):
        # No token, or one about to expire: auth refreshes it now rather than on schedule.
        return Decision(retry_in=2.0, result="token_rejected", request_token_refresh=True)
    return None


def _error_kind(error: BandejaError) -> ErrorKind:
    if isinstance(error, MailboxUnavailable):
        return "mailbox_unavailable"
    if isinstance(error, ConnectionDropped):
        return error.kind
    return "protocol"


def _gone_for_good(error: BandejaError, history: History) -> bool:
    return (
        isinstance(error, MailboxUnavailable)
        and history.error_threshold is not None
        and history.failures + 1 >= history.error_threshold
    )
