"""Translation of IMAP failures into Bandeja errors (docs/architecture.md#exo-responses)."""

from __future__ import annotations

import pytest
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from common.errors import MailboxUnavailable, Throttled
from services.fetcher.errors import ConnectionDropped, FolderMissing, TokenRejected
from services.fetcher.imap import ImapSession, translate


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


def test_a_connection_lost_during_login_is_not_a_refused_token() -> None:
    """imapclient reports a socket failure during AUTHENTICATE as LoginError; asking auth
    for a forced refresh would be wrong, the connection is what failed."""
    assert isinstance(translate(LoginError("socket error: EOF")), ConnectionDropped)
    assert isinstance(
        translate(LoginError("command: AUTHENTICATE => Connection closed. 14")), ConnectionDropped
    )


class _SelectFails:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def select_folder(self, folder: str) -> dict:
        raise self.error


def test_a_bye_during_select_is_a_dropped_connection_not_a_missing_folder() -> None:
    """Exchange's random ``BYE Connection closed`` can arrive as the answer to SELECT;
    counted as a missing folder it would move a healthy mailbox to ``error`` after a few."""
    bye = ImapSession(
        _SelectFails(IMAPClientAbortError("command: SELECT => Connection closed. 14"))
    )
    with pytest.raises(ConnectionDropped):
        bye.select("INBOX")
    missing = ImapSession(_SelectFails(IMAPClientError("select failed: Mailbox doesn't exist")))
    with pytest.raises(FolderMissing):
        missing.select("Procesado")
