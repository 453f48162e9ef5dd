"""The processor's pure parsing core: raw mail bytes to plain data.

Public face::

    parse_message(raw, limits=ParseLimits()) -> ParsedMail   # or raises UnparseableMail
    parse_headers_only(raw_head) -> ParsedMail               # for mail too large to parse

No I/O, no network, no global state; every cost is bounded by :class:`ParseLimits`.
"""

from __future__ import annotations

from .model import Attachment, InvoiceData, ParsedMail, ParseLimits
from .parse import parse_headers_only, parse_message

__all__ = [
    "Attachment",
    "InvoiceData",
    "ParseLimits",
    "ParsedMail",
    "parse_headers_only",
    "parse_message",
]
