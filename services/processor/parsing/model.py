"""The plain data a parsed mail becomes, and the bounds a parse must stay within."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

MIB = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    """Bounds that keep one hostile mail from taking the worker's time or memory.

    Hitting any of them raises ``UnparseableMail`` naming the bound, except the header
    bounds, which truncate the header and record a defect (a long Subject is survivable).
    Archives (zip, gzip) are never decompressed, so no expansion bound is needed: TNEF
    and S/MIME, the only containers unpacked, cannot yield more bytes than they hold.
    """

    max_input_bytes: int = 256 * MIB
    max_parts: int = 1_000
    max_depth: int = 10
    max_decoded_bytes: int = 200 * MIB
    # RFC 5322 2.1.1 allows 998 octets a line; a folded To: of 300 people is ~16 KiB. The
    # modern header parser takes ~20 µs a byte on address lists, so longer values skip it.
    max_header_bytes: int = 16 * 1024
    # All header values of one mail (its parts and anything unwrapped from it) that the
    # modern header parser may read; the rest are read the compat32 way (policies.py).
    # A normal mail uses a few KB; 64 KiB of hostile values cost about a second of CPU.
    max_parsed_header_bytes: int = 64 * 1024
    max_tnef_attributes: int = 10_000
    max_xml_bytes: int = 20 * MIB
    max_html_render_bytes: int = 5 * MIB


@dataclass(frozen=True)
class Attachment:
    filename: str
    original_filename: str | None
    content_type: str
    content: bytes
    disposition: str
    content_id: str | None
    source: str

    @property
    def size(self) -> int:
        return len(self.content)

    @cached_property
    def sha256(self) -> str:
        # Read for the document row, the file row and the event: hash once.
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class InvoiceData:
    format: str
    filename: str
    fields: dict[str, str | None]


@dataclass(frozen=True)
class ParsedMail:
    message_id: str | None
    subject: str
    from_: str | None
    from_address: str | None
    to: list[str]
    date: datetime | None
    text_body: str
    html_body: str | None
    attachments: list[Attachment] = field(default_factory=list)
    invoices: list[InvoiceData] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    @classmethod
    def bodiless(cls, text: str = "", defects: list[str] | None = None) -> ParsedMail:
        """A mail with no usable headers: only a text body (possibly empty) and defects."""
        return cls(
            message_id=None,
            subject="",
            from_=None,
            from_address=None,
            to=[],
            date=None,
            text_body=text,
            html_body=None,
            defects=defects or [],
        )
