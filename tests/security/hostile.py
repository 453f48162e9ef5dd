"""Hostile mails: each built to make a naive MIME pipeline spend time or memory, or to
smuggle a path or control characters into a stored filename."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import quote

BOMB_BYTES = 256 * 1024 * 1024  # what each bomb claims to expand to
_CHUNK = b"\0" * (1024 * 1024)


def _headers(subject: str, to: str) -> bytes:
    return (
        f"From: Mallory <mallory@attacker.example>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: {make_msgid(domain='attacker.example')}\r\n"
        "Date: Fri, 20 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    ).encode()


def _deflate_zeros(total: int, compressor: zlib._Compress) -> bytes:
    out = [compressor.compress(_CHUNK) for _ in range(total // len(_CHUNK))]
    out.append(compressor.flush())
    return b"".join(out)


def gzip_bomb(total: int = BOMB_BYTES) -> bytes:
    """``total`` zero bytes as a gzip member (~1000:1)."""
    return _deflate_zeros(total, zlib.compressobj(9, zlib.DEFLATED, 31))


def zip_bomb(total: int = BOMB_BYTES) -> bytes:
    """A zip with one member of ``total`` zero bytes, written without holding it in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        info = zipfile.ZipInfo("zeros.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            for _ in range(total // len(_CHUNK)):
                member.write(_CHUNK)
    return buffer.getvalue()


def bomb_mail(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Mallory <mallory@attacker.example>"
    msg["To"] = to
    msg["Subject"] = "hostile: decompression bombs"
    msg["Message-ID"] = make_msgid(domain="attacker.example")
    msg.set_content("Facturas adjuntas.\n")
    msg.add_attachment(zip_bomb(), maintype="application", subtype="zip", filename="f.zip")
    msg.add_attachment(gzip_bomb(), maintype="application", subtype="gzip", filename="f.xml.gz")
    return msg.as_bytes()


def many_parts_mail(to: str, parts: int = 10_000) -> bytes:
    boundary = "b0undary"
    body = [
        _headers("hostile: 10000 parts", to),
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode(),
    ]
    part = f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nx\r\n".encode()
    body.append(part * parts)
    body.append(f"--{boundary}--\r\n".encode())
    return b"".join(body)


def nested_rfc822_mail(to: str, depth: int = 2_000) -> bytes:
    inner = b"Subject: innermost\r\n\r\nbottom\r\n"
    for _ in range(depth):
        inner = b"Content-Type: message/rfc822\r\n\r\n" + inner
    return _headers("hostile: nested message/rfc822", to) + inner


def long_header_mail(to: str, size: int = 1024 * 1024) -> bytes:
    return (
        _headers("hostile: 1 MB header line", to)
        + b"X-Long: "
        + b"a" * size
        + b"\r\n"
        + b"Content-Type: text/plain\r\n\r\nbody\r\n"
    )


def nul_mail(to: str) -> bytes:
    return (
        _headers("hostile: NUL\0bytes", to).replace(b"Subject: ", b"X-Nul: a\0b\r\nSubject: ")
        + b'Content-Type: multipart/mixed; boundary="nb"\r\n\r\n'
        + b"--nb\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbefore\0after\r\n"
        + b"--nb\r\nContent-Type: application/pdf\r\n"
        + b'Content-Disposition: attachment; filename="fac\0tura.pdf"\r\n\r\n%PDF\0\0\0\r\n'
        + b"--nb--\r\n"
    )


HOSTILE_NAMES = (
    "../../etc/passwd",
    "..\\..\\windows\\system32\\evil.dll",
    "/abs/path/report.pdf",
    "evil\r\nX-Injected: 1.pdf",
    "bell\x07\x1b[31mred\x7f.pdf",
    "invoice\u202efdp.exe",
    "..",
    "CON.txt",
)


def filename_mail(to: str) -> bytes:
    """Attachments whose names are paths, carry controls or a bidi override (RFC 2231)."""
    chunks = [
        _headers("hostile: filenames", to),
        b'Content-Type: multipart/mixed; boundary="fb"\r\n\r\n',
        b"--fb\r\nContent-Type: text/plain\r\n\r\nsee attachments\r\n",
    ]
    for n, name in enumerate(HOSTILE_NAMES):
        encoded = quote(name, safe="")
        chunks.append(
            b"--fb\r\nContent-Type: application/octet-stream\r\n"
            + f"Content-Disposition: attachment; filename*=utf-8''{encoded}\r\n\r\n".encode()
            + f"file {n}\r\n".encode()
        )
    chunks.append(b"--fb--\r\n")
    return b"".join(chunks)


HOSTILE: dict[str, Callable[[str], bytes]] = {
    "bombs": bomb_mail,
    "many_parts": many_parts_mail,
    "nested_rfc822": nested_rfc822_mail,
    "long_header": long_header_mail,
    "nul_bytes": nul_mail,
    "filenames": filename_mail,
}
