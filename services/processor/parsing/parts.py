"""Safe accessors for one MIME part: type, filename, Content-ID, decoded payload."""

from __future__ import annotations

import binascii
import re
from email.message import Message

import pybase64

from .headers import decode_words, raw_value

_LONGEST_LINE = 998
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
        data = body.encode("ascii")
    except UnicodeEncodeError:
        return None
    decoded = _decode_even_crlf_lines(data)
    if decoded is not None:
        return decoded
    try:
        return pybase64.b64decode(data.translate(None, b"\r\n"), validate=True)
    except (binascii.Error, ValueError):
        return None


def _decode_even_crlf_lines(data: bytes) -> bytes | None:
    """Base64 in CRLF lines of one width, as mailers write it and IMAP serves it, decoded
    without first copying it without its line ends (the copy cost as much as the decode:
    1.4 ms a MB); None for any other layout, or when more than those line ends would be
    skipped.

    pybase64's lenient decoding skips every character outside the alphabet. The body is
    well formed when the line ends sit where lines of one width put them and the decoded
    length is what the characters left, all of the alphabet then, give: any other skipped
    character, or padding before the end, makes it shorter.
    """
    # The first line end, looked for only as far as the longest line mail may carry
    # (RFC 5322 2.1.1): a body in LF lines is not scanned whole before it is declined.
    width = data.find(b"\r\n", 0, _LONGEST_LINE + 2)
    if width <= 0:
        return None
    stride = width + 2
    lines = len(data) // stride
    whole = lines * stride
    if (
        data[width:whole:stride] != b"\r" * lines
        or data[width + 1 : whole : stride] != b"\n" * lines
    ):
        return None
    content_end = len(data) - 2 if data.endswith(b"\r\n") else len(data)
    # Line ends past the whole lines: the last, shorter line's, if it has one.
    last_line_end = len(data) - content_end if len(data) > whole else 0
    characters = len(data) - 2 * lines - last_line_end
    if characters % 4:
        return None  # the standard library pads it, with a defect
    first_pad = data.find(b"=")
    padding = 0
    if first_pad >= 0:
        padding = content_end - first_pad
        if padding > 2 or data[first_pad:content_end] != b"=" * padding:
            return None
    try:
        decoded = pybase64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == characters // 4 * 3 - padding else None


def charset(part: Message) -> str | None:
    """The declared charset parameter, if any."""
    try:
        return part.get_content_charset()
    except Exception:  # noqa: BLE001 - a broken parameter is the same as none
        return None
