"""Cheap checks on the raw bytes before the standard parser spends time on them.

The standard parser's cost grows with parts x nesting (it tests every line against every
open boundary), so the boundary structure is estimated here with one regex pass first.
Mail that split.py reproduces never needs the estimate: the split counts the parts and
depth it meets and declines past the limits (entity.py).
"""

from __future__ import annotations

import re

from common.errors import UnparseableMail

from .model import ParseLimits

# Both patterns begin with a literal, which lets the regex engine skip ahead with a fast
# substring search; IGNORECASE or a MULTILINE "^" would make it try every byte of the mail
# instead (the difference is most of a millisecond on a 60 KB mail). Case is handled by
# matching against a lowered copy and reading the value back from the original bytes.
_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^"\r\n;]{1,200})')
_DELIMITER = re.compile(rb"\n--([^\r\n]{1,250})")
_SAMPLE = 64 * 1024
# Text mail has almost no C0 controls besides tab, CR, LF and FF.
_BINARY_SHARE = 0.1
_TEXT_CONTROLS = frozenset(b"\t\r\n\f")


def check_input(raw: object, limits: ParseLimits) -> bytes:
    """Reject what cannot be a mail at all, before any parsing."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise UnparseableMail(f"expected bytes, got {type(raw).__name__}")
    data = bytes(raw)
    if len(data) > limits.max_input_bytes:
        raise UnparseableMail(f"mail of {len(data)} bytes exceeds {limits.max_input_bytes}")
    if not data or data.isspace():  # strip() would copy the whole mail to say the same
        raise UnparseableMail("empty mail")
    return data


def check_structure(raw: bytes, limits: ParseLimits) -> None:
    """Estimate part count and multipart depth from the boundary lines alone."""
    declared = {
        raw[m.start(1) : m.end(1)].strip().rstrip(b'"') for m in _BOUNDARY.finditer(raw.lower())
    }
    if not declared:
        return
    if len(declared) > limits.max_parts:
        raise UnparseableMail(f"more than {limits.max_parts} multipart boundaries")
    open_stack: list[bytes] = []
    delimiters = 0
    for match in _DELIMITER.finditer(b"\n" + raw):
        token = match.group(1).rstrip(b" \t")
        closing = token.endswith(b"--") and token[:-2] in declared
        boundary = token[:-2] if closing else token
        if boundary not in declared:
            continue
        if closing:
            while open_stack and open_stack.pop() != boundary:
                pass
            continue
        delimiters += 1
        if delimiters > limits.max_parts:
            raise UnparseableMail(f"more than {limits.max_parts} MIME parts")
        if boundary not in open_stack:
            open_stack.append(boundary)
            if len(open_stack) > limits.max_depth:
                raise UnparseableMail(f"multipart nesting deeper than {limits.max_depth}")


def looks_binary(raw: bytes) -> bool:
    """Whether headerless bytes are binary (an .msg file, an image) rather than text."""
    sample = raw[:_SAMPLE]
    controls = sum(1 for byte in sample if byte < 0x20 and byte not in _TEXT_CONTROLS)
    return controls > _BINARY_SHARE * len(sample)
