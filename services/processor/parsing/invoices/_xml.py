"""Safe XML loading and namespace-tolerant lookups shared by the extractors."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException


class NotXmlError(ValueError):
    """The bytes are not well-formed XML, or use DTDs or entities, which invoices never need."""


def load(data: bytes) -> Element:
    """Parse ``data`` with DTDs, entities and external references all refused."""
    try:
        root: Element = SafeET.fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise NotXmlError(f"{type(exc).__name__}: {exc}"[:200]) from exc
    return root


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
