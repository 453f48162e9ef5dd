"""Recognising electronic invoices among a mail's attachments.

One small interface, :class:`Extractor`; adding a country's format means writing one
module with a class that implements it and listing it in :data:`EXTRACTORS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from xml.etree.ElementTree import Element

from ..model import Attachment, InvoiceData
from ._xml import NotXmlError, load
from .cfdi import Cfdi
from .cl_dte import ChileanDte
from .ubl import Ubl

__all__ = ["EXTRACTORS", "Extractor", "find_invoices", "recognise"]


class Extractor(Protocol):
    def matches(self, root: Element) -> bool:
        """Whether this extractor understands the document rooted at ``root``."""

    def format_of(self, root: Element) -> str:
        """The format name, e.g. ``cl-dte``; only called when ``matches`` is true."""

    def extract(self, root: Element) -> list[dict[str, str | None]]:
        """One field dict per document; a list because an envelope may carry several."""


EXTRACTORS: tuple[Extractor, ...] = (ChileanDte(), Ubl(), Cfdi())
_XML_TYPES = frozenset({"application/xml", "text/xml"})


def _looks_like_xml(att: Attachment) -> bool:
    if att.content_type in _XML_TYPES or att.content_type.endswith("+xml"):
        return True
    if att.filename.lower().endswith(".xml"):
        return True
    head = att.content[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<?xml")


def recognise(content: bytes) -> list[tuple[str, dict[str, str | None]]]:
    """(format, fields) for each invoice in one XML document; empty if none is known."""
    root = load(content)
    for extractor in EXTRACTORS:
        if extractor.matches(root):
            fmt = extractor.format_of(root)
            return [(fmt, fields) for fields in extractor.extract(root)]
    return []


def find_invoices(
    attachments: Iterable[Attachment], max_bytes: int, defects: list[str]
) -> list[InvoiceData]:
    """Every invoice found in the XML attachments, in attachment order."""
    found: list[InvoiceData] = []
    for att in attachments:
        if not _looks_like_xml(att):
            continue
        if att.size > max_bytes:
            defects.append(f"{att.filename}: XML over {max_bytes} bytes not inspected")
            continue
        try:
            results = recognise(att.content)
        except NotXmlError as exc:
            defects.append(f"{att.filename}: XML not readable ({exc})")
            continue
        found.extend(InvoiceData(fmt, att.filename, fields) for fmt, fields in results)
    return found
