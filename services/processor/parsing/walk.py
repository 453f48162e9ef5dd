"""Walking a parsed MIME tree into bodies and attachments, within the parse limits.

Recursion is bounded by ``ParseLimits.max_depth`` and every leaf counts against
``max_parts`` and ``max_decoded_bytes``, so the walk's cost follows the limits, not the
input's ambitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from email.policy import Policy

from common.errors import UnparseableMail

from . import parts, smime, tnef
from .charsets import decode_text
from .entity import read_entity
from .headers import addresses, format_address, text_header
from .html_text import html_to_text, longer_than
from .model import ParseLimits

_SIGNATURES = frozenset(
    {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
)
_PKCS7_MIME = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_TNEF = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})


@dataclass(frozen=True)
class Found:
    """An attachment before naming: names are only unique once the whole mail is known."""

    original_filename: str | None
    content_type: str
    content: bytes
    content_id: str | None
    source: str


@dataclass
class Bodies:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)


@dataclass
class Walk:
    """What one walk has gathered so far, and what it has spent."""

    limits: ParseLimits
    # The outer mail's policy, for whatever is unwrapped from it (entity.read_entity).
    policy: Policy
    attachments: list[Found] = field(default_factory=list)
    all_html: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    parts_seen: int = 0
    bytes_decoded: int = 0

    def count_part(self, depth: int) -> None:
        self.parts_seen += 1
        if self.parts_seen > self.limits.max_parts:
            raise UnparseableMail(f"more than {self.limits.max_parts} MIME parts")
        if depth > self.limits.max_depth:
            raise UnparseableMail(f"MIME nesting deeper than {self.limits.max_depth}")

    def spend(self, size: int) -> None:
        self.bytes_decoded += size
        if self.bytes_decoded > self.limits.max_decoded_bytes:
            raise UnparseableMail(
                f"more than {self.limits.max_decoded_bytes} decoded bytes in one mail"
            )


def walk(part: Message, state: Walk, bodies: Bodies, depth: int, source: str) -> None:
    """Visit ``part`` and everything under it."""
    state.count_part(depth)
    ctype = parts.content_type(part, state.defects)
    # message/rfc822 parts are is_multipart() too (their payload is a one-item list).
    if ctype in {"message/rfc822", "message/global"}:
        _walk_forwarded(part, state, bodies, depth)
    elif part.is_multipart():
        _walk_multipart(part, ctype, state, bodies, depth=depth, source=source)
    elif ctype.startswith("multipart/"):
        _broken_multipart(part, ctype, state, bodies)
    else:
        _leaf(part, ctype, state, bodies, depth=depth, source=source)


def _walk_multipart(
    part: Message, ctype: str, state: Walk, bodies: Bodies, *, depth: int, source: str
) -> None:
    children = part.get_payload()
    if not isinstance(children, list):
        return
    for index, child in enumerate(children):
        if not isinstance(child, Message):
            continue
        # RFC 1847: the second part of multipart/signed is the signature, not content.
        if (
            ctype == "multipart/signed"
            and index > 0
            and parts.content_type(child, state.defects) in _SIGNATURES
        ):
            state.count_part(depth + 1)
            continue
        walk(child, state, bodies, depth + 1, source)


def _broken_multipart(part: Message, ctype: str, state: Walk, bodies: Bodies) -> None:
    # Its boundary never appeared, so the parser kept the body as one string; the words in
    # it are still worth keeping, as text.
    state.defects.append(f"{ctype} without its boundary; body kept as text")
    content = parts.payload(part, state.defects)
    state.spend(len(content))
    text = decode_text(content, parts.charset(part), state.defects, ctype).strip()
    if text:
        bodies.plain.append(text)


def _walk_forwarded(part: Message, state: Walk, bodies: Bodies, depth: int) -> None:
    inner = part.get_payload()
    message = inner[0] if isinstance(inner, list) and inner else None
    if not isinstance(message, Message):
        state.defects.append("message/rfc822 part without a message inside")
        return
    own = Bodies()
    walk(message, state, own, depth + 1, "forwarded")
    bodies.forwarded.append(_forwarded_text(message, own, state))


def _forwarded_text(message: Message, own: Bodies, state: Walk) -> str:
    defects = state.defects
    senders = addresses(message, "from", defects)
    lines = ["---------- Forwarded message ----------"]
    if senders:
        lines.append("From: " + format_address(*senders[0]))
    for name in ("date", "subject"):
        value = text_header(message, name, defects)
        if value:
            lines.append(f"{name.title()}: {value}")
    return ("\n".join(lines) + "\n\n" + render_text(own, state)).rstrip()


def render_text(bodies: Bodies, state: Walk) -> str:
    """Plain text if there was any, else the HTML rendered, then any forwarded mail.

    HTML past ``max_html_render_bytes`` is not rendered (the text says so); the HTML
    itself is kept whole in the document.
    """
    own = "\n\n".join(bodies.plain) if bodies.plain else ""
    if not own and bodies.html:
        html = "\n".join(bodies.html)
        limit = state.limits.max_html_render_bytes
        own = html_to_text(html, limit)
        if longer_than(html, limit):
            state.defects.append(f"text/html: only the first {limit} bytes rendered as text")
    return "\n\n".join(text for text in (own, *bodies.forwarded) if text)


def _leaf(
    part: Message, ctype: str, state: Walk, bodies: Bodies, *, depth: int, source: str
) -> None:
    name = parts.filename(part, state.defects)
    content = parts.payload(part, state.defects)
    state.spend(len(content))
    if ctype in _TNEF or (name or "").lower() == "winmail.dat":
        _unpack_tnef(part, content, name, state, source)
    elif ctype in _PKCS7_MIME or (name or "").lower().endswith(".p7m"):
        _unpack_smime(part, content, name, state, bodies, depth=depth)
    elif _is_body(part, ctype, name):
        text = _newlines(decode_text(content, parts.charset(part), state.defects, ctype))
        if ctype == "text/html":
            bodies.html.append(text)
            state.all_html.append(text)
        else:
            bodies.plain.append(text)
    else:
        state.attachments.append(_found(part, ctype, content, name, source))


def _newlines(text: str) -> str:
    # Bodies arrive with CRLF (RFC 5322 2.3) or bare LF depending on the mailer and store.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_body(part: Message, ctype: str, name: str | None) -> bool:
    if ctype not in {"text/plain", "text/html"} or name:
        return False
    return parts.disposition(part) != "attachment"


def _found(part: Message, ctype: str, content: bytes, name: str | None, source: str) -> Found:
    return Found(name, ctype, content, parts.content_id(part), source)


def _unpack_tnef(part: Message, content: bytes, name: str | None, state: Walk, source: str) -> None:
    try:
        files = tnef.unpack(content, state.limits.max_tnef_attributes)
    except tnef.TnefError as exc:
        state.defects.append(f"winmail.dat kept as is: {exc}")
        state.attachments.append(_found(part, "application/ms-tnef", content, name, source))
        return
    for item in files:
        state.count_part(0)
        state.spend(len(item.content))
        state.attachments.append(
            Found(item.name, "application/octet-stream", item.content, None, "tnef")
        )


def _unpack_smime(
    part: Message, content: bytes, name: str | None, state: Walk, bodies: Bodies, *, depth: int
) -> None:
    try:
        inner = smime.signed_content(content)
    except smime.NotSignedDataError as exc:
        state.defects.append(f"S/MIME part kept as is: {exc}")
        state.attachments.append(_found(part, "application/pkcs7-mime", content, name, "smime"))
        return
    state.spend(len(inner))
    message = read_entity(inner, state.limits, state.policy)
    walk(message, state, bodies, depth + 1, "smime")
