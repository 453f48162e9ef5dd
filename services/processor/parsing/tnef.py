"""Unpacking the files Outlook wraps into ``winmail.dat`` (MS-OXTNEF)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from tnefparse import TNEF

_SIGNATURE = 0x223E9F78
# Signature (4) and legacy key (2), then per attribute: level (1), id (4), length (4),
# data, checksum (2) -- MS-OXTNEF 2.1.3.
_HEADER = 6
_ATTR_OVERHEAD = 11


class TnefFile(NamedTuple):
    name: str | None
    content: bytes


class TnefError(ValueError):
    """The TNEF stream could not be unpacked; the caller keeps winmail.dat as it is."""


def _count_attributes(data: bytes, limit: int) -> int:
    # tnefparse copies the remaining stream for every attribute, which is quadratic in the
    # attribute count; counting them first keeps a crafted file from exploiting that.
    pos, count = _HEADER, 0
    while pos + _ATTR_OVERHEAD <= len(data):
        (length,) = struct.unpack_from("<I", data, pos + 5)
        pos += _ATTR_OVERHEAD + length
        count += 1
        if count > limit:
            raise TnefError(f"more than {limit} TNEF attributes")
    return count


def unpack(data: bytes, max_attributes: int) -> list[TnefFile]:
    """The attached files inside a TNEF stream, in order."""
    if len(data) < _HEADER or struct.unpack_from("<I", data)[0] != _SIGNATURE:
        raise TnefError("not a TNEF stream (bad signature)")
    _count_attributes(data, max_attributes)
    try:
        parsed = TNEF(data, do_checksum=False)
        files = [TnefFile(_name(att), bytes(att.data or b"")) for att in parsed.attachments]
    except Exception as exc:
        raise TnefError(f"TNEF unpacking failed ({type(exc).__name__})") from exc
    return [f for f in files if f.content]


def _name(att: object) -> str | None:
    for getter in ("long_filename", "name"):
        try:
            value = getattr(att, getter)
            value = value() if callable(value) else value
        except Exception:  # noqa: BLE001, S112 - a missing name is not a failure
            continue
        if isinstance(value, bytes):
            value = value.decode("cp1252", errors="replace")
        if isinstance(value, str) and value.strip("\x00 "):
            return value.strip("\x00 ")
    return None
