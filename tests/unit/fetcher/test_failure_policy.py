"""What a fetch run or an IDLE watcher does after a failure, decided from the error's type
and the mailbox's recent failures (services/fetcher/failure_policy.py)."""

from __future__ import annotations

import pytest

from common.errors import Throttled, TokenNotReady
from services.fetcher.errors import (
    ConnectionDropped,
    FolderMissing,
    LeaseLost,
    NotConnected,
    OversizedLiteral,
    ProtocolViolation,
    TenantBusy,
    TokenRejected,
)
from services.fetcher.failure_policy import (
    History,
    after_fetch_failure,
    after_idle_failure,
    ends_without_logout,
)

FIRST = History(failures=0, error_threshold=3)


def test_a_throttled_reply_silences_the_tenant_for_the_suggested_time() -> None:
    """The whole tenant waits (Exchange throttles per tenant), and the mailbox with it."""
    for decide in (after_fetch_failure, after_idle_failure):
        decision = decide(Throttled("throttled", backoff_seconds=12.5), FIRST)
        assert decision.throttle_tenant_seconds == 12.5
        assert decision.retry_in == 12.5
        assert decision.result == "throttled"
        assert not decision.move_to_error


def test_a_tiny_suggested_backoff_still_waits_a_second() -> None:
    """A suggested 0 ms backoff must not turn into a reconnect loop."""
    assert after_fetch_failure(Throttled("t", backoff_seconds=0.0), FIRST).retry_in == 1.0


def test_a_refused_token_asks_auth_for_a_refresh_and_looks_again_soon() -> None:
    """Fetch runs and IDLE watchers alike ask auth for a forced refresh on a refused token."""
    for decide in (after_fetch_failure, after_idle_failure):
        decision = decide(TokenRejected("AUTHENTICATE failed."), History(failures=5))
        assert decision.request_token_refresh
        assert decision.retry_in == 2.0
        assert decision.error_kind == "auth"


def test_a_token_not_ready_asks_auth_for_a_refresh_and_looks_again_soon() -> None:
    """No usable token: auth is asked for a forced refresh where the failure is recorded
    (the store only reads), and no IMAP error is counted (no login was tried)."""
    decision = after_fetch_failure(TokenNotReady(7), FIRST)
    assert (decision.result, decision.retry_in) == ("token_rejected", 2.0)
    assert decision.request_token_refresh
    assert decision.error_kind is None


def test_a_busy_tenant_is_skipped_or_throttled_by_how_long_it_must_wait() -> None:
    """All slots in use: look again in a second (skipped); a throttled tenant: throttled."""
    assert after_fetch_failure(TenantBusy("slots", 1.0), FIRST).result == "skipped"
    throttled = after_fetch_failure(TenantBusy("throttled", 40.0), FIRST)
    assert (throttled.result, throttled.retry_in) == ("throttled", 40.0)
    assert throttled.error_kind is None


@pytest.mark.parametrize("kind", ["bye", "timeout", "connection"])
def test_a_dropped_connection_is_counted_by_its_kind_and_retried_soon(kind: str) -> None:
    """Exchange's random BYEs are fine again at once: 1 s, doubling up to 30 s."""
    error = ConnectionDropped("dropped", kind=kind)  # type: ignore[arg-type]
    assert after_fetch_failure(error, History(0)).error_kind == kind
    assert [after_fetch_failure(error, History(n)).retry_in for n in (0, 1, 4, 9)] == [
        1.0,
        2.0,
        16.0,
        30.0,
    ]


def test_other_failures_back_off_up_to_five_minutes() -> None:
    """A protocol error or a lost lease: 5 s doubling, at most 300 s."""
    assert [after_fetch_failure(LeaseLost("x"), History(n)).retry_in for n in (0, 2, 6)] == [
        5.0,
        20.0,
        300.0,
    ]
    assert after_fetch_failure(ProtocolViolation("x"), FIRST).error_kind == "protocol"


def test_a_mailbox_that_denies_access_reaches_the_error_state_at_the_threshold() -> None:
    """Two failures are retried; the third in a row moves the mailbox to ``error``."""
    for error in (NotConnected("not connected"), FolderMissing("no folder")):
        decisions = [after_fetch_failure(error, History(n, 3)) for n in (0, 1, 2)]
        assert [d.move_to_error for d in decisions] == [False, False, True]
        assert decisions[0].error_kind == "mailbox_unavailable"


def test_an_idle_watcher_never_moves_a_mailbox_to_error() -> None:
    """That is the fetch runs' call; a watcher only waits longer, up to a minute."""
    decisions = [after_idle_failure(NotConnected("x"), History(n)) for n in (0, 1, 9)]
    assert not any(d.move_to_error for d in decisions)
    assert [d.retry_in for d in decisions] == [4.0, 8.0, 60.0]


def test_throttling_and_unreadable_replies_end_the_session_without_a_logout() -> None:
    """No LOGOUT to a server that asked for silence, nor after a literal we refused."""
    assert ends_without_logout(Throttled("t", backoff_seconds=1))
    assert ends_without_logout(OversizedLiteral("literal of 10^14 bytes"))
    assert not ends_without_logout(ConnectionDropped("bye", kind="bye"))
    assert not ends_without_logout(TokenRejected("x"))
