"""Hostile mails that once stalled a mailbox or pinned a processor: each is built to make
the database refuse the mail, or a parser spend time out of proportion to its size.

Every builder takes the recipient and returns the raw mail; ``HOSTILE_DATA`` is the set
the end-to-end test and ``bench/hostile_cpu.py`` send.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from email.utils import make_msgid

from tests.unit.processor.parsing_samples import signed_data

KIB = 1024


def _headers(subject: str, to: str, message_id: bytes | None = None) -> bytes:
    mid = message_id or make_msgid(domain="attacker.example").encode()
    return (
        (
            f"From: Mallory <mallory@attacker.example>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            "Date: Fri, 20 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        ).encode()
        + b"Message-ID: "
        + mid
        + b"\r\n"
    )


def _text_body() -> bytes:
    return b"Content-Type: text/plain; charset=utf-8\r\n\r\nFacturas adjuntas.\r\n"


def long_message_id_mail(to: str, size: int = 6 * KIB) -> bytes:
    """A folded Message-ID of ``size`` bytes: over PostgreSQL's b-tree row limit."""
    words = [b"x" * 60 for _ in range(size // 63)]
    folded = b"<" + b"\r\n ".join(words) + b"@attacker.example>"
    return _headers("hostile: long Message-ID", to, folded) + _text_body()


def nul_message_id_mail(to: str) -> bytes:
    """A NUL byte (and other controls) inside the Message-ID: PostgreSQL text refuses NUL."""
    return _headers("hostile: NUL in Message-ID", to, b"<a\x00b\x01c@attacker.example>") + (
        _text_body()
    )


def smime_content_type_mail(to: str, size: int = 310 * KIB) -> bytes:
    """An opaque S/MIME blob whose inner entity has a ``size``-byte Content-Type of many
    parameters: seconds of CPU per 100 KB in an unbounded header parser."""
    params = b"a=b; " * (size // 5)
    inner = b"Content-Type: text/plain; " + params + b"\r\n\r\nFirmado.\r\n"
    blob = base64.encodebytes(signed_data(inner)).replace(b"\n", b"\r\n")
    return (
        _headers("hostile: S/MIME inner Content-Type", to)
        + b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
        + b"Content-Transfer-Encoding: base64\r\n"
        + b"Content-Disposition: attachment; filename=smime.p7m\r\n\r\n"
        + blob
    )


def smime_many_parts_mail(to: str, parts: int = 10_000) -> bytes:
    """10,000 MIME parts hidden inside an opaque S/MIME blob, past the outer checks."""
    inner = [b'Content-Type: multipart/mixed; boundary="in"\r\n\r\n']
    inner.append(b"--in\r\nContent-Type: text/plain\r\n\r\nx\r\n" * parts)
    inner.append(b"--in--\r\n")
    blob = base64.encodebytes(signed_data(b"".join(inner))).replace(b"\n", b"\r\n")
    return (
        _headers("hostile: S/MIME 10000 parts", to)
        + b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + blob
    )


def html_end_tags_mail(to: str, size: int = 391 * KIB, subject: str = "391 KiB") -> bytes:
    """An HTML-only mail of ``</`` repeated: quadratic in the standard library's parser."""
    line = b"</" * 499 + b"\r\n"
    body = line * (size // len(line))
    return (
        _headers(f"hostile: HTML {subject}", to)
        + b"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hola</p>\r\n"
        + body
    )


def html_2mb_mail(to: str) -> bytes:
    return html_end_tags_mail(to, 2 * 1024 * KIB, "2 MiB")


def xml_attachment_mail(to: str, xml_bytes: int = 20 * 1024 * KIB - 64 * KIB) -> bytes:
    """One XML attachment of ``xml_bytes`` in the smallest elements there are (``<a/>``):
    the most tree per byte, about 24 times the XML's size in ElementTree (an invoice's
    elements cost about 9 times)."""
    xml = b'<?xml version="1.0"?>\n<r>' + b"<a/>" * (xml_bytes // 4) + b"</r>\n"
    blob = base64.encodebytes(xml).replace(b"\n", b"\r\n")
    return (
        _headers("hostile: XML attachment", to)
        + b'Content-Type: multipart/mixed; boundary="xb"\r\n\r\n--xb\r\n'
        + _text_body()
        + b"--xb\r\nContent-Type: application/xml; name=items.xml\r\n"
        + b"Content-Transfer-Encoding: base64\r\n"
        + b"Content-Disposition: attachment; filename=items.xml\r\n\r\n"
        + blob
        + b"--xb--\r\n"
    )


def many_content_types_mail(to: str, parts: int = 990, size: int = 16 * KIB) -> bytes:
    """``parts`` parts (just under the part limit), each with its own ``size``-byte
    Content-Type of many parameters: under every per-part cap, and about 190 s of CPU in
    the modern header parser without a budget per mail."""
    out = [
        _headers("hostile: 990 long Content-Types", to),
        b'Content-Type: multipart/mixed; boundary="hb"\r\n\r\n',
    ]
    params = b"a=b; " * (size // 5)
    for n in range(parts):
        out.append(b"--hb\r\nContent-Type: text/plain; n=%d; " % n + params + b"\r\n\r\nx\r\n")
    out.append(b"--hb--\r\n")
    return b"".join(out)


# Subject → builder, in the order they are sent; the subjects name the cases in reports.
HOSTILE_DATA: dict[str, Callable[[str], bytes]] = {
    "hostile: long Message-ID": long_message_id_mail,
    "hostile: NUL in Message-ID": nul_message_id_mail,
    "hostile: S/MIME inner Content-Type": smime_content_type_mail,
    "hostile: S/MIME 10000 parts": smime_many_parts_mail,
    "hostile: HTML 391 KiB": html_end_tags_mail,
    "hostile: HTML 2 MiB": html_2mb_mail,
    "hostile: 990 long Content-Types": many_content_types_mail,
}
