"""The Exchange personality proxy, driven with imapclient over verified TLS (no mocks)."""

from __future__ import annotations

import base64
import re
import socket
import time

import pytest
from conftest import Exo
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from standin.exchange import personality

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")


class Raw:
    """A bare TLS IMAP connection to the proxy, for byte-level checks."""

    def __init__(self, exo: Exo) -> None:
        plain = socket.create_connection(("127.0.0.1", exo.proxy.port), timeout=10)
        self.sock = exo.ssl_context().wrap_socket(plain, server_hostname="127.0.0.1")
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, tag: str, text: str) -> list[bytes]:
        self.send(f"{tag} {text}\r\n".encode())
        return self.until(tag)

    def until(self, tag: str) -> list[bytes]:
        lines = []
        while line := self.file.readline():
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                break
        return lines

    def close(self) -> None:
        self.sock.close()


def _xoauth2(address: str, token: str) -> str:
    return base64.b64encode(f"user={address}\1auth=Bearer {token}\1\1".encode()).decode()


def _message(size: int) -> bytes:
    """CRLF mail of about `size` bytes; body lines end like literals to trap naive framing."""
    head = b"From: a@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n\r\n"
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5{12}\r\n"
    return head + line * (size // len(line))


def test_greeting_and_capabilities_are_exchanges(exo: Exo) -> None:
    """Exchange's greeting and CAPABILITY sets before and after login; no CONDSTORE/ENABLE."""
    address = exo.new_user()
    client = exo.imap()
    try:
        assert client.welcome.startswith(b"* OK The Microsoft Exchange IMAP4 service is ready.")
        assert b" ".join(client.capabilities()) == personality.PRE_AUTH.upper().encode()
        client.oauth2_login(address, exo.app_token())
        # imaplib leaves the pre-auth CAPABILITY among its untagged responses and Exchange's
        # bare `OK AUTHENTICATE completed.` carries none, so imapclient's capabilities()
        # would report the pre-auth set: ask again and take the newest answer.
        after = client._imap.capability()[1][-1]
        assert after.decode() == personality.POST_AUTH
        assert b"CONDSTORE" not in after
        assert b"ENABLE" not in after
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()
    raw = Raw(exo)
    try:
        assert raw.command("a1", f"AUTHENTICATE XOAUTH2 {_xoauth2(address, exo.app_token())}") == [
            b"a1 OK AUTHENTICATE completed.\r\n"
        ]
        assert raw.command("a2", "ENABLE CONDSTORE") == [b"a2 BAD Command Error. 12\r\n"]
        raw.command("a3", "SELECT INBOX")
        assert raw.command("a4", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)") == [
            b"a4 BAD Command Error. 12\r\n"
        ]
        assert raw.command("a5", "NOOP") == [b"a5 OK NOOP completed.\r\n"]
    finally:
        raw.close()


def test_sasl_forms_and_refused_token(exo: Exo) -> None:
    """Continuation-form XOAUTH2, OAUTHBEARER and a bad token (`NO AUTHENTICATE failed.`)."""
    address = exo.new_user()
    token = exo.app_token()
    client = exo.imap()
    client.oauthbearer_login(address, token)
    client.logout()
    raw = Raw(exo)
    try:
        raw.send(b"b1 AUTHENTICATE XOAUTH2\r\n")
        assert raw.file.readline() == b"+ \r\n"
        raw.send(_xoauth2(address, "not-a-token").encode() + b"\r\n")
        assert raw.until("b1") == [b"b1 NO AUTHENTICATE failed.\r\n"]
    finally:
        raw.close()
    assert exo.proxy.stats.logins[address] == 1
    assert exo.proxy.stats.auth_failures[address] == 1


def test_large_fetch_and_append_are_byte_exact(exo: Exo) -> None:
    """A 1 MB FETCH and APPENDs (synchronizing and LITERAL+) pass through unchanged."""
    address = exo.new_user()
    big = _message(1_000_000)
    uid = exo.standin.dovecot.append(address, big)
    client = exo.login(address)
    try:
        client.select_folder("INBOX")
        assert client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == big
        small = _message(200_000)
        client.append("INBOX", small)  # imaplib sends a synchronizing {N} literal
        found = client.search(["SUBJECT", "big"])
        assert len(found) == 2
        assert client.fetch([max(found)], ["BODY.PEEK[]"])[max(found)][b"BODY[]"] == small
    finally:
        client.logout()
    raw = Raw(exo)
    try:
        raw.command("c1", f"AUTHENTICATE XOAUTH2 {_xoauth2(address, exo.app_token())}")
        mail = b"Subject: plus\r\n\r\n{3}\r\nabc\r\n"
        raw.send(f"c2 APPEND INBOX {{{len(mail)}+}}\r\n".encode() + mail + b"\r\n")
        assert raw.until("c2")[-1].startswith(b"c2 OK [APPENDUID ")
    finally:
        raw.close()
    with exo.standin.dovecot.admin_session(address) as admin:
        admin.select_folder("INBOX", readonly=True)
        (plus,) = admin.search(["SUBJECT", "plus"])
        assert admin.fetch([plus], ["BODY.PEEK[]"])[plus][b"BODY[]"] == mail


def test_expired_token_ends_the_session_mid_idle(exo: Exo) -> None:
    """`* BYE Session invalidated - AccessTokenExpired` arrives during IDLE, and before a
    command once the token has expired between commands."""
    address = exo.new_user()
    client = exo.login(address, exo.user_token(address))
    client.select_folder("INBOX")
    client.idle()
    assert client.idle_check(timeout=0.5) == []
    exo.control.expire_access_tokens(address)
    (bye,) = client.idle_check(timeout=5)
    assert b" ".join(bye) == b"BYE Session invalidated - AccessTokenExpired"
    with pytest.raises(IMAPClientAbortError):
        client.idle_done()

    slow_interval = exo.proxy._context.token_check_interval
    exo.proxy._context.token_check_interval = 30  # only the check before each command
    try:
        client = exo.login(address, exo.user_token(address))
        exo.control.expire_access_tokens(address)
        # imaplib reports a BYE's text (imapclient's noop() and idle_done() only see EOF).
        with pytest.raises(IMAPClientAbortError, match="AccessTokenExpired"):
            client.select_folder("INBOX")
    finally:
        exo.proxy._context.token_check_interval = slow_interval
    assert exo.proxy.stats.byes["token_expired"] >= 2


def test_throttled_reply_and_backoff_record(exo: Exo) -> None:
    """The throttled reply carries the backoff; the record shows how long the client waited."""
    address = exo.new_user()
    exo.proxy.faults.throttle(address, backoff_ms=300)
    client = exo.login(address)
    try:
        with pytest.raises(
            IMAPClientError,
            match=r"Request is throttled\. Suggested Backoff "
            r"Time: 300 milliseconds",
        ):
            client.select_folder("INBOX")
        time.sleep(0.3)
        client.select_folder("INBOX")
        client.noop()
    finally:
        client.logout()
    (gap,) = exo.proxy.stats.backoff_gaps_ms(address)
    assert gap is not None
    assert gap >= 300
    kinds = [e.kind for e in exo.proxy.stats.events(address)]
    assert kinds[:4] == ["authenticate", "command", "throttled", "command"]


def test_throttle_by_domain_with_disconnect(exo: Exo) -> None:
    """Throttling matches the tenant's domain and can drop the connection after the reply."""
    address = exo.new_user()
    exo.proxy.faults.throttle(exo.tenant["domain"], backoff_ms=50, disconnect=True, status="BAD")
    client = exo.login(address)
    with pytest.raises(IMAPClientError, match="Request is throttled"):
        client.noop()
    with pytest.raises(IMAPClientAbortError):
        client.noop()
    time.sleep(0.05)
    exo.login(address).logout()
    (gap,) = exo.proxy.stats.backoff_gaps_ms(address)
    assert gap is not None
    assert gap >= 50  # the reconnect's AUTHENTICATE counts as the retry


def test_authenticated_but_not_connected(exo: Exo) -> None:
    """Login succeeds, the next command gets Exchange's BAD and the connection closes."""
    address = exo.new_user()
    exo.proxy.faults.not_connected(address)
    client = exo.login(address)
    with pytest.raises(IMAPClientError, match=re.escape(personality.NOT_CONNECTED)):
        client.select_folder("INBOX")
    with pytest.raises(IMAPClientAbortError):
        client.noop()
    client = exo.login(address)  # armed for one login only
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()


def test_connection_cap_refuses_the_next_login(exo: Exo) -> None:
    """With a cap of 3, session 4 gets `NO AUTHENTICATE failed.` until one closes."""
    address = exo.new_user()
    token = exo.app_token()
    exo.proxy.faults.set_connection_limit(3)
    clients = [exo.login(address, token) for _ in range(3)]
    try:
        with pytest.raises(LoginError, match=re.escape("AUTHENTICATE failed.")):
            exo.login(address, token)
        clients.pop().logout()
        time.sleep(0.2)
        clients.append(exo.login(address, token))
    finally:
        for client in clients:
            client.logout()
    stats = exo.proxy.stats
    assert stats.peak_sessions[address] == 3
    assert stats.refused_over_limit[address] == 1
    assert stats.logins[address] == 4


def test_bye_in_the_middle_of_a_fetch(exo: Exo) -> None:
    """`* BYE Connection closed. 14` after the second FETCH response line."""
    address = exo.new_user()
    for n in range(4):
        exo.standin.dovecot.append(address, f"Subject: m{n}\r\n\r\nbody\r\n".encode())
    exo.proxy.faults.bye_mid_fetch(after_lines=2, match=address)
    client = exo.login(address)
    client.select_folder("INBOX")
    with pytest.raises(IMAPClientAbortError, match=re.escape("Connection closed. 14")):
        client.fetch("1:*", ["BODY.PEEK[]"])
    assert exo.proxy.stats.byes["mid_fetch"] == 1


def test_random_bye_and_counters(exo: Exo) -> None:
    """A certain random BYE ends the session; counters see sessions, verbs and reasons."""
    address = exo.new_user()
    before = exo.proxy.stats.snapshot()
    client = exo.login(address)
    exo.proxy.faults.random_byes(1.0, seed=7)
    with pytest.raises(IMAPClientAbortError, match=re.escape("Connection closed. 14")):
        client.select_folder("INBOX")
    after = exo.proxy.stats.snapshot()
    assert after["sessions_opened"] == before["sessions_opened"] + 1
    assert after["byes"]["random"] == before["byes"].get("random", 0) + 1
    assert after["commands"]["SELECT"] == before["commands"].get("SELECT", 0) + 1
