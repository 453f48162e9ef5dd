"""Turning a walked message into the final :class:`ParsedMail`: headers, names, invoices."""

from __future__ import annotations

import mimetypes
import re
import urllib.parse
from email.message import Message

from . import filenames
from .headers import addresses, date_header, format_address, message_id, raw_value, text_header
from .invoices import find_invoices
from .model import Attachment, ParsedMail
from .walk import Bodies, Found, Walk, render_text

_CID_REF = re.compile(r"""cid:([^"'\s>)]+)""", re.IGNORECASE)


def headers_only(message: Message, defects: list[str]) -> ParsedMail:
    """A ParsedMail with the envelope headers and nothing else."""
    senders = addresses(message, "from", defects)
    sender = senders[0] if senders else None
    subject = text_header(message, "subject", defects) or ""
    _note_long_headers(message, defects)
    return ParsedMail(
        message_id=message_id(message),
        subject=subject,
        from_=format_address(*sender) if sender else None,
        from_address=(sender[1].lower() or None) if sender else None,
        to=[format_address(n, a) for n, a in addresses(message, "to", defects)],
        date=date_header(message, defects),
        text_body="",
        html_body=None,
        defects=defects,
    )


def assemble(message: Message, state: Walk, bodies: Bodies) -> ParsedMail:
    """The full ParsedMail for a walked message."""
    base = headers_only(message, state.defects)
    attachments = _name_all(state.attachments, _referenced_cids(state.all_html))
    invoices = find_invoices(attachments, state.limits.max_xml_bytes, state.defects)
    return ParsedMail(
        message_id=base.message_id,
        subject=base.subject,
        from_=base.from_,
        from_address=base.from_address,
        to=base.to,
        date=base.date,
        text_body=render_text(bodies, state),
        html_body="\n".join(bodies.html) if bodies.html else None,
        attachments=attachments,
        invoices=invoices,
        defects=list(dict.fromkeys(state.defects)),
    )


def _referenced_cids(html_bodies: list[str]) -> set[str]:
    return {
        urllib.parse.unquote(ref).strip("<>").lower()
        for html in html_bodies
        for ref in _CID_REF.findall(html)
    }


def _name_all(found: list[Found], cids: set[str]) -> list[Attachment]:
    registry = filenames.NameRegistry()
    named = []
    for index, item in enumerate(found, start=1):
        ctype = _refine_type(item)
        fallback = filenames.default_name(ctype, index)
        name = registry.claim(filenames.sanitise(item.original_filename, fallback))
        inline = item.content_id is not None and item.content_id.lower() in cids
        named.append(
            Attachment(
                filename=name,
                original_filename=item.original_filename,
                content_type=ctype,
                content=item.content,
                disposition="inline" if inline else "attachment",
                content_id=item.content_id,
                source=item.source,
            )
        )
    return named


def _refine_type(item: Found) -> str:
    # Files out of winmail.dat, and parts sent as octet-stream, say what they are only by name.
    if item.content_type != "application/octet-stream" or not item.original_filename:
        return item.content_type
    guessed, _ = mimetypes.guess_type(item.original_filename, strict=True)
    return guessed.lower() if guessed else item.content_type


def _note_long_headers(message: Message, defects: list[str]) -> None:
    cap = getattr(message.policy, "max_header_bytes", None)
    if cap is None:
        return
    for name in ("subject", "from", "to", "cc", "content-type"):
        raw = raw_value(message, name)
        if raw is not None and len(raw) > cap:
            defects.append(f"{name}: header of {len(raw)} bytes exceeds {cap}; truncated")
