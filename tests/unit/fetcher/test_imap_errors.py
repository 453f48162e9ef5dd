"""Translation of IMAP failures into Bandeja errors (MS365.md §3.4)."""

from __future__ import annotations

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from common.errors import MailboxUnavailable, Throttled
from services.fetcher.errors import ConnectionDropped, TokenRejected
from services.fetcher.imap import translate


def test_exchange_throttling_reply_gives_the_suggested_backoff() -> None:
    """``Request is throttled. Suggested Backoff Time: N milliseconds`` → wait N ms."""
    err = translate(
        IMAPClientError("Request is throttled. Suggested Backoff Time: 2500 milliseconds")
    )
    assert isinstance(err, Throttled)
    assert err.backoff_seconds == 2.5


def test_token_expiry_bye_is_a_token_problem_not_a_dead_mailbox() -> None:
    """``BYE Session invalidated - AccessTokenExpired`` asks for a fresh token."""
    err = translate(IMAPClientAbortError("Session invalidated - AccessTokenExpired"))
    assert isinstance(err, TokenRejected)
    assert err.expired


def test_rejected_login_and_not_connected() -> None:
    """A refused AUTHENTICATE is a token problem; "not connected" is a mailbox problem."""
    assert isinstance(translate(LoginError("AUTHENTICATE failed.")), TokenRejected)
    assert isinstance(
        translate(IMAPClientError("User is authenticated but not connected.")), MailboxUnavailable
    )


def test_dropped_connections_are_transient() -> None:
    """BYE and socket failures mean "reconnect later"."""
    assert isinstance(translate(IMAPClientAbortError("Connection closed. 14")), ConnectionDropped)
    assert isinstance(translate(TimeoutError("timed out")), ConnectionDropped)
