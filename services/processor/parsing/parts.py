"""Safe accessors for one MIME part: type, filename, Content-ID, decoded payload."""

from __future__ import annotations

import binascii
import re
from email.message import Message

import pybase64

from .headers import decode_words, raw_value

_CID_BRACKETS = re.compile(r"^\s*<?\s*|\s*>?\s*$")
_TOKEN = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")


def content_type(part: Message, defects: list[str]) -> str:
    """Lower-case ``type/subtype``; RFC 2045 5.2 defaults when missing or invalid."""
    try:
        ctype = part.get_content_type().lower()
    except Exception as exc:  # noqa: BLE001 - the header parser's bugs vary by version
        defects.append(f"content-type unreadable ({type(exc).__name__})")
        return "application/octet-stream"
    return ctype if _TOKEN.match(ctype) else "application/octet-stream"


def filename(part: Message, defects: list[str]) -> str | None:
    """The sender's name for the part, RFC 2231 and RFC 2047 decoded."""
    try:
        name = part.get_filename()
    except Exception as exc:  # noqa: BLE001 - the header parser's bugs vary by version
        defects.append(f"filename unreadable ({type(exc).__name__})")
        return None
    if name is None:
        name = _raw_param_filename(part)
    if name is None:
        return None
    # Many mailers put RFC 2047 words inside the quoted parameter (RFC 2047 5 forbids it).
    decoded = decode_words(str(name), defects, "filename")
    return decoded or None


def _raw_param_filename(part: Message) -> str | None:
    # Unquoted parameters holding an encoded word (filename==?utf-8?B?...?=) defeat the
    # parameter parser because of the "=" signs; read them straight from the header.
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        raw = raw_value(part, header) or ""
        match = re.search(rf'(?:^|;)\s*{param}\s*=\s*"?([^";]+)', raw, re.IGNORECASE)
        if match and match.group(1).strip():
            return match.group(1).strip()
    return None


def disposition(part: Message) -> str | None:
    """``attachment``, ``inline`` or whatever else was sent, lower-case; None if absent."""
    raw = raw_value(part, "content-disposition")
    if raw is None:
        return None
    return raw.split(";", 1)[0].strip().lower() or None


def content_id(part: Message) -> str | None:
    """The Content-ID without its angle brackets."""
    raw = raw_value(part, "content-id")
    if raw is None:
        return None
    cleaned = _CID_BRACKETS.sub("", raw.encode("ascii", "replace").decode("ascii"))
    return cleaned or None


def payload(part: Message, defects: list[str]) -> bytes:
    """The part's bytes with the Content-Transfer-Encoding undone (lenient on bad base64)."""
    decoded = _well_formed_base64(part)
    if decoded is not None:
        return decoded
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:  # noqa: BLE001 - uu/base64 decoders raise assorted errors
        defects.append(f"payload undecodable ({type(exc).__name__}); kept as sent")
        raw = part.get_payload()
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    return data if isinstance(data, bytes) else b""


def _well_formed_base64(part: Message) -> bytes | None:
    """A base64 body decoded by pybase64 when it is well formed (alphabet characters in
    lines, padding only at the end); None for anything else, which the standard
    library decodes leniently, with its defects.

    Same bytes as ``get_payload(decode=True)``, whose path for well-formed base64 is
    line ends removed, a pattern check over the whole body and a table-driven decode:
    45 against 220 us for a 59 KB attachment, most of the processor's decode time
    (BENCHMARKS.md). pybase64 decodes strictly, so anything it refuses goes back to the
    standard library's lenient path.
    """
    # The Content-Transfer-Encoding read as get_payload reads it.
    if part.is_multipart() or str(part.get("content-transfer-encoding", "")).lower() != "base64":
        return None
    body = part.get_payload()
    if not isinstance(body, str):
        return None
    try:
        return pybase64.b64decode(body.encode("ascii").translate(None, b"\r\n"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None


def charset(part: Message) -> str | None:
    """The declared charset parameter, if any."""
    try:
        return part.get_content_charset()
    except Exception:  # noqa: BLE001 - a broken parameter is the same as none
        return None
