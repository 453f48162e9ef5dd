"""The header stage of the mail rules: decide what a mail is from its header section,
RFC822.SIZE and INTERNALDATE, before its body is downloaded (common/rules.py).

Pure: the IMAP reads and the records are fetch.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from common.message_ids import clean_message_id
from common.rules import Envelope, Rule, decide


@dataclass(frozen=True)
class MailHead:
    """What one FETCH of ``BODY.PEEK[HEADER]``, RFC822.SIZE and INTERNALDATE returns."""

    header: bytes
    size: int | None
    received_at: datetime | None


@dataclass(frozen=True)
class Screened:
    uid: int
    head: MailHead
    message_id: str | None
    # The rule that decided, or None: only the parsed mail's attachments can tell.
    rule: Rule | None


def screen(rules: list[Rule], heads: dict[int, MailHead], now: datetime) -> list[Screened]:
    screened = []
    for uid, head in sorted(heads.items()):
        headers = BytesHeaderParser(policy=compat32).parsebytes(head.header)
        envelope = Envelope.from_headers(
            from_=_all(headers, "From"),
            to=_all(headers, "To") + _all(headers, "Cc"),
            subject=_decoded(headers.get("Subject")),
            size=head.size,
            received_at=head.received_at,
        )
        message_id = clean_message_id(_text(headers.get("Message-ID")))
        screened.append(Screened(uid, head, message_id, decide(rules, envelope, now)))
    return screened


def _all(headers: Message, name: str) -> list[str]:
    return [str(value) for value in headers.get_all(name, [])]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _decoded(value: object) -> str:
    """The subject as a reader sees it (RFC 2047 encoded words decoded); as sent if its
    encoding is broken, so a rule still sees the text."""
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (LookupError, UnicodeDecodeError, ValueError):
        return str(value)
