"""Translation of IMAP failures into Bandeja errors (docs/architecture.md#exo-responses)."""

from __future__ import annotations

import pytest
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from common.errors import MailboxUnavailable, Throttled
from services.fetcher.errors import (
    ConnectionDropped,
    FolderMissing,
    MessageOverCap,
    ProtocolViolation,
    TokenRejected,
)
from services.fetcher.imap import (
    MAX_THROTTLE_BACKOFF_SECONDS,
    ImapSession,
    cap_literals,
    translate,
    translated,
)


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


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (IMAPClientAbortError("Connection closed. 14"), "bye"),
        (TimeoutError("timed out"), "timeout"),
        (ConnectionResetError("Connection reset by peer"), "connection"),
        (LoginError("socket error: EOF"), "connection"),
        (IMAPClientError("unexpected response"), "connection"),
    ],
)
def test_a_dropped_connection_says_how_it_dropped(failure: Exception, kind: str) -> None:
    """The kind behind bandeja_imap_errors_total{kind} comes from the failure's type, not
    from words in its message: a BYE whose text says "timeout" is still a BYE."""
    dropped = translate(failure)
    assert isinstance(dropped, ConnectionDropped)
    assert dropped.kind == kind


class _Idling:
    """imapclient during IDLE: ``idle_check`` returns the untagged responses it read."""

    def __init__(self, responses: list[tuple[object, ...]]) -> None:
        self.responses = responses
        self.done = False

    def idle(self) -> None:
        pass

    def idle_check(self, timeout: float) -> list[tuple[object, ...]]:
        return self.responses

    def idle_done(self) -> None:
        self.done = True


def test_idle_reports_new_mail_and_ignores_other_updates() -> None:
    """EXISTS (or RECENT) during IDLE is new mail; a flag change (FETCH) is not."""
    assert ImapSession(_Idling([(3, b"EXISTS")])).idle_check(1.0)  # type: ignore[arg-type]
    assert not ImapSession(_Idling([(3, b"FETCH", (b"FLAGS", ()))])).idle_check(1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bye", "error"),
    [
        ((b"BYE", b"Session invalidated - AccessTokenExpired"), TokenRejected),
        ((b"BYE", b"Connection closed. 14"), ConnectionDropped),
    ],
)
def test_a_bye_during_idle_is_raised_as_what_it_means(
    bye: tuple[object, ...], error: type[Exception]
) -> None:
    """Exchange ends an IDLE session with an untagged BYE, not an error reply; the expired
    token asks auth for a refresh, a random BYE only reconnects. IDLE is ended either way."""
    client = _Idling([bye])
    session = ImapSession(client)  # type: ignore[arg-type]
    with pytest.raises(error), session.idling():
        session.idle_check(1.0)
    assert client.done


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


def test_a_throttle_backoff_past_fifteen_minutes_is_capped() -> None:
    """The server's suggestion is obeyed up to 15 minutes: a tenant is never silenced for
    as long as the server likes (10^10 ms is almost four months)."""
    err = translate(
        IMAPClientError("Request is throttled. Suggested Backoff Time: 10000000000 milliseconds")
    )
    assert isinstance(err, Throttled)
    assert err.backoff_seconds == MAX_THROTTLE_BACKOFF_SECONDS == 900


class _Wire:
    """imaplib's side of a connection: ``read(n)`` is what _get_response calls for ``{n}``."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def read(self, size: int) -> bytes:
        self.asked.append(size)
        return b"x" * size


class _Client:
    def __init__(self, sizes: dict[int, dict[bytes, object]] | None = None) -> None:
        self._imap = _Wire()
        self._sizes = sizes or {}

    def fetch(self, uids: list[int], items: list[str]) -> dict[int, dict[bytes, object]]:
        return self._sizes


def test_a_literal_announced_over_the_cap_is_a_protocol_error_before_anything_is_read() -> None:
    """``{100000000000000}`` would be a MemoryError inside imaplib; it ends the session as
    a protocol error (retried later), and not one byte of it is asked for."""
    client = _Client()
    cap_literals(client, 1_000)  # type: ignore[arg-type]
    assert client._imap.read(1_000) == b"x" * 1_000
    with pytest.raises(ProtocolViolation, match="100000000000000"), translated():
        client._imap.read(100_000_000_000_000)
    assert client._imap.asked == [1_000]


def test_a_mail_without_rfc822_size_has_no_size_rather_than_zero() -> None:
    """Missing (or non-numeric) sizes are left out, so the fetch reads that mail in chunks
    against the cap instead of counting it as an empty mail."""
    session = ImapSession(
        _Client({1: {b"RFC822.SIZE": 10}, 2: {}, 3: {b"RFC822.SIZE": b"NIL"}})  # type: ignore[arg-type]
    )
    assert session.sizes([1, 2, 3]) == {1: 10}


class _EndlessMail(_Client):
    """A server whose mail never ends, whatever size it announced."""

    def fetch(self, uids: list[int], items: list[str]) -> dict[int, dict[bytes, object]]:
        start = items[0].split("<")[1].split(".")[0]
        return {uids[0]: {f"BODY[]<{start}>".encode(): b"x" * 100}}


def test_a_mail_read_in_chunks_stops_at_the_cap_whatever_the_server_said() -> None:
    """Chunks are read until the server has no more, not as many as RFC822.SIZE promised,
    and reading stops with MessageOverCap once the cap is passed: the mail is then
    recorded as too large instead of being held in memory or stored cut."""
    session = ImapSession(_EndlessMail())  # type: ignore[arg-type]
    chunks = session.fetch_chunks(7, chunk_size=100, cap=1_000)
    read = []
    with pytest.raises(MessageOverCap) as over:
        read.extend(chunks)
    assert len(read) == 10
    assert over.value.uid == 7
    assert over.value.size == 1_100
