"""A session SELECTs a folder once (services/fetcher/imap.py): a parked session's next
run reuses the selection. The mail such a run must still see is covered against Dovecot
by tests/e2e/test_fetcher.py::test_polls_reuse_one_logged_in_session."""

from __future__ import annotations

from typing import Any

import pytest
from imapclient.exceptions import IMAPClientError

from services.fetcher.errors import FolderMissing
from services.fetcher.imap import ImapSession


class CountingClient:
    def __init__(self) -> None:
        self.selects: list[tuple[str, bool]] = []
        self.uidvalidity = 7
        self.fail = False

    def select_folder(self, folder: str, readonly: bool = False) -> dict[bytes, Any]:
        self.selects.append((folder, readonly))
        if self.fail:
            raise IMAPClientError("select failed: Mailbox doesn't exist")
        return {b"UIDVALIDITY": self.uidvalidity, b"UIDNEXT": 10, b"EXISTS": 3}


def test_the_second_run_on_a_session_sends_no_select() -> None:
    client = CountingClient()
    session = ImapSession(client)  # type: ignore[arg-type]
    first = session.select("INBOX")
    client.uidvalidity = 8  # no server may do this within a session; would be re-read
    assert session.select("INBOX") == first
    assert client.selects == [("INBOX", False)]


def test_another_folder_or_an_examine_in_between_selects_again() -> None:
    client = CountingClient()
    session = ImapSession(client)  # type: ignore[arg-type]
    session.select("INBOX")
    session.select("Facturas")  # the mailbox's folder setting changed between runs
    session.select_readonly("Facturas")  # read-only now: the next run must SELECT
    assert session.select("Facturas").uidvalidity == 7
    assert client.selects == [
        ("INBOX", False),
        ("Facturas", False),
        ("Facturas", True),
        ("Facturas", False),
    ]


def test_after_a_failed_select_the_next_run_selects_again() -> None:
    """A failed SELECT leaves no folder selected on the server (RFC 3501 §6.3.1)."""
    client = CountingClient()
    session = ImapSession(client)  # type: ignore[arg-type]
    session.select("INBOX")
    client.fail = True
    with pytest.raises(FolderMissing):
        session.select("Procesado")
    client.fail = False
    session.select("INBOX")
    assert client.selects == [("INBOX", False), ("Procesado", False), ("INBOX", False)]
