"""Safe XML loading and namespace-tolerant lookups shared by the extractors."""

from __future__ import annotations

from xml.etree import ElementTree
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException


class NotXmlError(ValueError):
    """The bytes are not well-formed XML, or use DTDs or entities, which invoices never need."""


def load(data: bytes) -> Element:
    """Parse ``data`` with DTDs, entities and external references all refused."""
    try:
        if _cannot_hold_a_dtd(data):
            # Nothing for defusedxml to refuse, so the standard library's C parser reads
            # it: defusedxml's parser calls Python for every element (3 times the CPU on
            # an invoice, 2.7 times on a 20 MiB XML attachment).
            root: Element = ElementTree.fromstring(data)  # noqa: S314 - no DTD, see above
        else:
            root = SafeET.fromstring(data, forbid_dtd=True)
    # LookupError: an encoding Python does not know, declared in the XML (a hostile sender's
    # attachment, which must not fail the whole mail).
    except (ParseError, DefusedXmlException, ValueError, LookupError) as exc:
        raise NotXmlError(f"{type(exc).__name__}: {exc}"[:200]) from exc
    return root


def _cannot_hold_a_dtd(data: bytes) -> bool:
    """Whether expat can find no DTD in ``data``, so no entity and no external reference:
    XML declares those only in a DTD.

    Without a NUL byte, expat reads the bytes in an encoding where XML's ASCII characters
    are themselves: UTF-16 and UTF-32 put a NUL in every ASCII character, and expat refuses
    a declared encoding that would move them (EBCDIC, UTF-7; tests/unit/processor/
    test_parsing_xml.py). There a DTD can only start with the bytes ``<!DOCTYPE``.
    """
    return b"\x00" not in data and b"<!DOCTYPE" not in data


def local(tag: str) -> str:
    """The tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def child(elem: Element | None, *path: str) -> Element | None:
    """Follow ``path`` by local names, whatever the namespaces (SII files vary)."""
    for name in path:
        if elem is None:
            return None
        elem = next((c for c in elem if local(c.tag) == name), None)
    return elem


def text(elem: Element | None, *path: str) -> str | None:
    """Stripped text at ``path``, None when absent or empty."""
    found = child(elem, *path)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None
