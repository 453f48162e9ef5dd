"""Safe accessors for one MIME part: type, filename, Content-ID, decoded payload."""

from __future__ import annotations

import re
from email.message import Message

from .headers import decode_words, raw_value

_CID_BRACKETS = re.compile(r"^\s*<?\s*|\s*>?\s*$")
_TOKEN = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")
# A parameter as RFC 2045 5.1 writes it, in printable ASCII: a token name (no "*", so no
# RFC 2231 forms), "=", and a token or a quoted string without backslash escapes.
_PLAIN_PARAMETER = re.compile(r'([A-Za-z0-9-]+)=("[ !#-\[\]-~]*"|[A-Za-z0-9!#$&+.^_`|~-]+)')
_PLAIN_DISPOSITION = re.compile(
    rf"[ ]?[A-Za-z-]+(?:[ ]?;[ ]?{_PLAIN_PARAMETER.pattern})*[ ]?;?[ ]?"
)


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
        name = _plain_disposition_filename(part)
        if name is None:
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


def _plain_disposition_filename(part: Message) -> str | None:
    """The filename parameter of a Content-Disposition that is plain printable ASCII on
    one line: a type, then parameters whose values are tokens or quoted strings without
    escapes, and one filename among them. None for any other value (RFC 2231 ``name*``,
    RFC 2047 words, 8-bit, comments, folding, no or repeated filename), which
    ``Message.get_filename`` reads as before.

    ``get_filename`` builds the modern header object (about 35 µs for a typical
    Content-Disposition) only to split its text again with compat32's parameter parser;
    for values of this shape both give the parameter's text as sent, so the name is read
    here (``tests/unit/processor/test_parsing_filenames.py`` compares the two).
    """
    raw = None
    for key, value in part.raw_items():
        if key.lower() == "content-disposition":
            raw = value
            break
    if raw is None or "=?" in raw or not _PLAIN_DISPOSITION.fullmatch(raw):
        return None
    names = [value for key, value in _PLAIN_PARAMETER.findall(raw) if key.lower() == "filename"]
    if len(names) != 1:
        return None
    return names[0][1:-1].strip() if names[0].startswith('"') else names[0]


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
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:  # noqa: BLE001 - uu/base64 decoders raise assorted errors
        defects.append(f"payload undecodable ({type(exc).__name__}); kept as sent")
        raw = part.get_payload()
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    return data if isinstance(data, bytes) else b""


def charset(part: Message) -> str | None:
    """The declared charset parameter, if any."""
    try:
        return part.get_content_charset()
    except Exception:  # noqa: BLE001 - a broken parameter is the same as none
        return None
