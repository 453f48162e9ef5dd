"""The signed content inside an S/MIME ``application/pkcs7-mime`` signed-data blob.

``cryptography`` loads certificates from PKCS#7 but does not hand back the encapsulated
content, so the few ASN.1 elements on the path to it are read here (RFC 5652 5.1/5.2).
BER, not just DER: Outlook writes indefinite lengths and chunked OCTET STRINGs. Signatures
are not verified; the processor only needs the documents.
"""

from __future__ import annotations

from typing import NamedTuple

_OID_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")
_OID_ENVELOPED_DATA = bytes.fromhex("2a864886f70d010703")
_SEQUENCE, _SET, _OID, _INTEGER = 0x30, 0x31, 0x06, 0x02
_OCTETS, _OCTETS_CONSTRUCTED, _EXPLICIT_0 = 0x04, 0x24, 0xA0
_MAX_DEPTH = 32


class NotSignedDataError(ValueError):
    """The blob is not signed-data we can read (encrypted, or malformed)."""


class _Tlv(NamedTuple):
    tag: int
    start: int  # first content byte
    end: int  # one past the last content byte
    next: int  # first byte after the element (after the end-of-contents octets, if any)


def _length(data: bytes, pos: int) -> tuple[int | None, int]:
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first == 0x80:
        return None, pos + 1
    count = first & 0x7F
    if count > 4:
        raise NotSignedDataError("ASN.1 length too large")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _read(data: bytes, pos: int, depth: int = 0) -> _Tlv:
    if depth > _MAX_DEPTH or pos + 2 > len(data):
        raise NotSignedDataError("truncated or too deeply nested ASN.1")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise NotSignedDataError("multi-byte ASN.1 tags are not used by CMS")
    length, start = _length(data, pos + 1)
    if length is not None:
        if start + length > len(data):
            raise NotSignedDataError("ASN.1 element runs past the end")
        return _Tlv(tag, start, start + length, start + length)
    cursor = start
    while data[cursor : cursor + 2] != b"\x00\x00":
        cursor = _read(data, cursor, depth + 1).next
    return _Tlv(tag, start, cursor, cursor + 2)


def _children(data: bytes, parent: _Tlv, depth: int) -> list[_Tlv]:
    found, cursor = [], parent.start
    while cursor < parent.end:
        child = _read(data, cursor, depth + 1)
        found.append(child)
        cursor = child.next
    return found


def _expect(tlv: _Tlv, tag: int) -> _Tlv:
    if tlv.tag != tag:
        raise NotSignedDataError(f"expected ASN.1 tag {tag:#x}, found {tlv.tag:#x}")
    return tlv


def _octets(data: bytes, tlv: _Tlv, depth: int) -> bytes:
    if tlv.tag == _OCTETS:
        return data[tlv.start : tlv.end]
    _expect(tlv, _OCTETS_CONSTRUCTED)
    return b"".join(_octets(data, c, depth + 1) for c in _children(data, tlv, depth))


def signed_content(blob: bytes) -> bytes:
    """The encapsulated content of a CMS signed-data blob (usually a MIME entity)."""
    try:
        info = _children(blob, _expect(_read(blob, 0), _SEQUENCE), 0)
        oid = blob[info[0].start : info[0].end]
        if oid == _OID_ENVELOPED_DATA:
            raise NotSignedDataError("encrypted (enveloped-data); cannot be read without the key")
        if oid != _OID_SIGNED_DATA:
            raise NotSignedDataError("not CMS signed-data")
        signed = _children(blob, _expect(info[1], _EXPLICIT_0), 1)
        fields = _children(blob, _expect(signed[0], _SEQUENCE), 2)
        encap = _children(blob, _expect(fields[2], _SEQUENCE), 3)
        if len(encap) < 2:
            raise NotSignedDataError("detached signature: no content inside")
        wrapper = _children(blob, _expect(encap[1], _EXPLICIT_0), 4)
        return _octets(blob, wrapper[0], 5)
    except IndexError as exc:
        raise NotSignedDataError("truncated CMS structure") from exc
