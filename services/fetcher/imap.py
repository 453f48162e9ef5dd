"""The IMAP adapter: imapclient behind a small surface, its errors translated once.

Only what Exchange Online offers is used (docs/architecture.md#exo-capabilities): UIDPLUS, MOVE,
IDLE; never CONDSTORE/QRESYNC.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from common.errors import Throttled
from common.http import tls_context
from common.settings import Settings
from services.fetcher.errors import (
    ConnectionDropped,
    FolderMissing,
    MessageOverCap,
    NotConnected,
    OversizedLiteral,
    TokenRejected,
)
from services.fetcher.screening import MailHead

log = structlog.get_logger(__name__)

# Exchange's throttling reply is the one place we must read the server's text: it gives
# no other signal (docs/architecture.md#exo-responses, imapsync#198/#212).
_THROTTLED = re.compile(r"Request is throttled\. Suggested Backoff Time: (\d+) milliseconds", re.I)
_TOKEN_EXPIRED = "AccessTokenExpired"  # noqa: S105 - a server message
# imapclient reports a connection lost during AUTHENTICATE as LoginError("socket error: …"):
# that is a dropped connection, not a refused token (no forced refresh for it).
_CONNECTION_LOST = re.compile(r"(socket error|command: \S+ => )", re.I)
_NOT_CONNECTED = "User is authenticated but not connected"

# The server's suggested backoff is obeyed up to this; past it a tenant would stay silent
# for as long as the server (or whoever speaks for it) likes.
MAX_THROTTLE_BACKOFF_SECONDS = 15 * 60
# Enough of a mail's header section to read its envelope from (the processor reads 256 KiB).
HEADER_BYTES = 1024 * 1024
# What the mail rules read of a mail before deciding on it: sender, recipients and
# subject are near the top; a header section past this is read as far as this goes.
RULES_HEADER_BYTES = 64 * 1024

SEEN = b"\\Seen"
FLAGGED = b"\\Flagged"


@dataclass(frozen=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int | None
    exists: int


# Untagged responses during IDLE that mean the mailbox changed (RFC 2177, RFC 3501 §7.3).
_NEW_MAIL = (b"EXISTS", b"RECENT")


def translate(exc: BaseException) -> Exception:
    """Map one imapclient / socket / TLS failure to the most specific Bandeja error."""
    text = str(exc)
    if from_text := _from_server_text(text):
        return from_text
    if isinstance(exc, LoginError) and not _CONNECTION_LOST.match(text):
        return TokenRejected(text)
    if isinstance(exc, IMAPClientAbortError):
        return ConnectionDropped(f"{type(exc).__name__}: {text}", kind="bye")
    if isinstance(exc, socket.timeout):
        return ConnectionDropped(f"{type(exc).__name__}: {text}", kind="timeout")
    if isinstance(exc, ssl.SSLError | OSError):
        return ConnectionDropped(f"{type(exc).__name__}: {text}", kind="connection")
    return ConnectionDropped(f"protocol error: {text}", kind="connection")


def _from_server_text(text: str) -> Exception | None:
    """The errors only the server's words tell apart (docs/architecture.md#exo-responses)."""
    if throttled := _THROTTLED.search(text):
        return Throttled(text, backoff_seconds=_throttle_backoff(int(throttled.group(1)) / 1000))
    if _TOKEN_EXPIRED in text:
        return TokenRejected(text, expired=True)
    if _NOT_CONNECTED in text:
        return NotConnected(text)
    return None


def _bye_error(response: tuple[Any, ...]) -> Exception:
    """A BYE that arrived as an untagged response (during IDLE), not as an exception."""
    text = b" ".join(r if isinstance(r, bytes) else str(r).encode() for r in response)
    decoded = text.decode(errors="replace")
    return _from_server_text(decoded) or ConnectionDropped(f"BYE: {decoded}", kind="bye")


def _throttle_backoff(suggested: float) -> float:
    if suggested <= MAX_THROTTLE_BACKOFF_SECONDS:
        return suggested
    log.warning(
        "imap_throttle_backoff_capped",
        suggested_seconds=suggested,
        capped_seconds=MAX_THROTTLE_BACKOFF_SECONDS,
    )
    return float(MAX_THROTTLE_BACKOFF_SECONDS)


@contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except (IMAPClientError, OSError) as exc:
        raise translate(exc) from exc


def cap_literals(client: IMAPClient, cap: int) -> None:
    """Refuse any literal the server announces above ``cap`` bytes, before reading it.

    imaplib reads an announced ``{N}`` literal with one ``read(N)`` (imaplib.IMAP4.
    _get_response): ``{100000000000000}`` is a MemoryError, and anything short of that
    is memory the server decides. The session cannot go on after a refusal (the literal
    is still on the wire), so it ends as a protocol error and is dropped.
    """
    imap = client._imap
    read = imap.read

    def bounded_read(size: int) -> bytes:
        if size > cap:
            raise OversizedLiteral(f"server announced a literal of {size} bytes (cap {cap})")
        data: bytes = read(size)
        return data

    imap.read = bounded_read


class ImapSession:
    """One logged-in IMAP connection."""

    def __init__(self, client: IMAPClient) -> None:
        self._client = client
        # The folder this session has SELECTed, with what SELECT said of it.
        self._selected: tuple[str, FolderStatus] | None = None

    @classmethod
    def open(cls, settings: Settings, address: str, access_token: str) -> ImapSession:
        with translated():
            client = IMAPClient(
                settings.imap_host,
                port=settings.imap_port,
                ssl=settings.imap_tls,
                ssl_context=tls_context(settings.ca_bundle) if settings.imap_tls else None,
                timeout=settings.imap_timeout,
            )
            quiet_imaplib(client)
            cap_literals(client, literal_cap(settings))
            try:
                client.oauth2_login(address, access_token)
            except BaseException:
                _close_quietly(client)
                raise
            _forget_pre_login_capabilities(client)
        return cls(client)

    def select(self, folder: str) -> FolderStatus:
        """SELECT ``folder``; a session that has it selected already (a parked session's
        next run) answers from that SELECT, whose EXISTS and UIDNEXT are then old.

        UIDs and UIDVALIDITY cannot change within a session (RFC 3501 §2.3.1.1), and the
        commands that follow see new mail, so the round trip bought nothing. A folder
        deleted meanwhile fails the next command; the run after it logs in afresh and
        reports the folder missing.
        """
        if self._selected is not None and self._selected[0] == folder:
            return self._selected[1]
        self._selected = None
        with translated():
            try:
                info = self._client.select_folder(folder)
            except IMAPClientError as exc:
                # A BYE or a dropped connection during SELECT (an abort) says nothing about
                # the folder; counted as "folder missing" it would put a healthy mailbox in
                # the error state after a few unlucky disconnects.
                if (
                    isinstance(exc, IMAPClientAbortError)
                    or _NOT_CONNECTED in str(exc)
                    or _THROTTLED.search(str(exc))
                ):
                    raise
                raise FolderMissing(f"cannot select {folder!r}: {exc}") from exc
        status = FolderStatus(
            uidvalidity=int(info[b"UIDVALIDITY"]),
            uidnext=int(info[b"UIDNEXT"]) if b"UIDNEXT" in info else None,
            exists=int(info.get(b"EXISTS", 0)),
        )
        self._selected = (folder, status)
        return status

    def select_readonly(self, folder: str) -> None:
        """EXAMINE the folder, for watching it: nothing read there changes a flag."""
        self._selected = None
        with translated():
            self._client.select_folder(folder, readonly=True)

    def noop(self) -> None:
        """A round trip that proves the session is still logged in."""
        with translated():
            self._client.noop()

    @contextmanager
    def idling(self) -> Iterator[None]:
        """IDLE (RFC 2177) for the body of the ``with``; DONE when it ends, however."""
        with translated():
            self._client.idle()
            try:
                yield
            finally:
                self._client.idle_done()

    def idle_check(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in IDLE; True if new mail was announced.

        A BYE arrives here as an untagged response, not as an exception: Exchange ends
        sessions this way when the token expires (``BYE Session invalidated -
        AccessTokenExpired``) or at random (``BYE Connection closed. 14``); it is raised
        as the error it means.
        """
        with translated():
            responses = self._client.idle_check(timeout=timeout)
        for response in responses:
            if response and response[0] == b"BYE":
                raise _bye_error(response)
        return any(len(r) > 1 and r[1] in _NEW_MAIL for r in responses)

    def unseen_uids(self) -> list[int]:
        with translated():
            return sorted(int(u) for u in self._client.search(["UNSEEN"]))

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of each mail that has one; a mail the server gave no (or no
        numeric) size for is left out: its size is unknown, never 0."""
        if not uids:
            return {}
        with translated():
            data = self._client.fetch(uids, ["RFC822.SIZE"])
        sizes = {}
        for uid, item in data.items():
            size = item.get(b"RFC822.SIZE")
            if isinstance(size, int) or (isinstance(size, bytes) and size.isdigit()):
                sizes[int(uid)] = int(size)
        return sizes

    def fetch_bodies(self, uids: list[int]) -> dict[int, bytes]:
        """Whole messages, without setting \\Seen (BODY.PEEK)."""
        if not uids:
            return {}
        with translated():
            data = self._client.fetch(uids, ["BODY.PEEK[]"])
        return {int(uid): bytes(item[b"BODY[]"]) for uid, item in data.items() if b"BODY[]" in item}

    def fetch_chunks(self, uid: int, chunk_size: int, cap: int) -> Iterator[bytes]:
        """One big mail in partial FETCHes (RFC 3501 §6.4.5 ``BODY.PEEK[]<start.length>``),
        so neither side holds it whole. Read until the server has no more, whatever size
        it announced; ``MessageOverCap`` once more than ``cap`` bytes came."""
        start = 0
        while True:
            item = f"BODY.PEEK[]<{start}.{chunk_size}>"
            with translated():
                data = self._client.fetch([uid], [item])
            part = data.get(uid, {}).get(f"BODY[]<{start}>".encode())
            if not part:
                return
            start += len(part)
            if start > cap:
                raise MessageOverCap(uid, start)
            yield bytes(part)
            if len(part) < chunk_size:
                return

    def fetch_headers(self, uids: list[int]) -> dict[int, bytes]:
        if not uids:
            return {}
        # A partial fetch: a header section can be as large as the mail.
        with translated():
            data = self._client.fetch(uids, [f"BODY.PEEK[HEADER]<0.{HEADER_BYTES}>"])
        return {
            int(uid): bytes(item[b"BODY[HEADER]<0>"])
            for uid, item in data.items()
            if b"BODY[HEADER]<0>" in item
        }

    def heads(self, uids: list[int]) -> dict[int, MailHead]:
        """Header section, RFC822.SIZE and INTERNALDATE of each mail, in one FETCH,
        without setting \\Seen: what the mail rules decide on before any body is read."""
        if not uids:
            return {}
        header_item = f"BODY.PEEK[HEADER]<0.{RULES_HEADER_BYTES}>"
        with translated():
            data = self._client.fetch(uids, [header_item, "RFC822.SIZE", "INTERNALDATE"])
        heads = {}
        for uid, item in data.items():
            header = item.get(b"BODY[HEADER]<0>")
            if header is None:
                continue
            size = item.get(b"RFC822.SIZE")
            received = item.get(b"INTERNALDATE")
            heads[int(uid)] = MailHead(
                header=bytes(header),
                size=int(size) if isinstance(size, int) else None,
                # imapclient gives local time without a zone (normalise_times): make it
                # aware so the age condition compares instants.
                received_at=received.astimezone(UTC) if isinstance(received, datetime) else None,
            )
        return heads

    def apply_post_action(self, uids: list[int], action: str, move_to: str | None) -> None:
        if not uids:
            return
        # +FLAGS.SILENT (RFC 3501 6.4.6): the server does not send back each mail's flags,
        # which nothing here reads.
        with translated():
            if action == "move" and move_to:
                self._client.move(uids, move_to)
            elif action == "flag":
                self._client.add_flags(uids, [FLAGGED], silent=True)
            else:
                self._client.add_flags(uids, [SEEN], silent=True)

    def capabilities(self) -> tuple[bytes, ...]:
        with translated():
            return tuple(self._client.capabilities())

    def close(self) -> None:
        _close_quietly(self._client)

    def drop(self) -> None:
        """Close the socket without a LOGOUT."""
        with suppress(IMAPClientError, OSError):
            self._client.shutdown()


def literal_cap(settings: Settings) -> int:
    """The largest literal a session reads. Above the mail size cap, because RFC822.SIZE
    is the server's estimate (a mail it says is under the cap may be a little over: read,
    and recorded as too large); far above it is no mail Bandeja would keep whole."""
    return 2 * settings.max_message_bytes + HEADER_BYTES


def quiet_imaplib(client: IMAPClient) -> None:
    """Stop imaplib from formatting every response for a debug log nobody reads.

    imapclient sets imaplib's debug level to 5 so that imaplib logs through its logger;
    imaplib then builds its messages eagerly, ``repr`` of each fetched mail and ``str`` of
    the whole FETCH response, before the logger drops them: about 13 ms of CPU per MB
    fetched, most of the IMAP cost of a big mail (BENCHMARKS.md). With DEBUG enabled for
    ``imapclient.imaplib`` the level stays, for whoever is debugging the protocol.
    """
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def _forget_pre_login_capabilities(client: IMAPClient) -> None:
    """Make the next capability check ask the server again.

    Exchange advertises MOVE only after login and sends no CAPABILITY with its
    ``OK AUTHENTICATE completed.`` (docs/architecture.md#exo-capabilities); imapclient would
    otherwise keep the pre-login list and refuse ``move()``. imapclient has no public way to
    drop its cache.
    """
    client._cached_capabilities = None
    client._imap.untagged_responses.pop("CAPABILITY", None)


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClientError, OSError, OversizedLiteral):
        with suppress(IMAPClientError, OSError):
            client.shutdown()
