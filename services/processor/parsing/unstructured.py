"""A plain unstructured header (a Subject) read without the modern header parser.

``email.policy.default`` builds a parse tree for every Subject: 26 µs for plain ASCII, 43 µs
with one RFC 2047 encoded word, of a 60 KB mail's 0.5 ms parse (BENCHMARKS.md, "Eleventh
round"), and only its text is used. For the values below, the text is computed here the way
``email._header_value_parser.get_unstructured`` computes it; anything else returns None and
goes to that parser, as before:

- printable ASCII words separated by spaces and tabs, none holding ``=?``;
- or such words mixed with whole encoded words ``=?charset?Q|B?text?=`` standing alone
  between blanks, whose charset (no RFC 2231 language) decodes their bytes strictly to
  text without surrogates; B text of whole base64 quanta.

As there, an encoded word's bytes are decoded with its charset, Q's ``_`` is a space and
``=XX`` a byte, and the blanks between two encoded words are dropped (RFC 2047 section 6.2).
``tests/unit/processor/test_parsing_unstructured.py`` compares both ways on every Subject of
both corpora and on a list of edge cases.
"""

from __future__ import annotations

import base64
import binascii
import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PLAIN = re.compile(r"[\t\x20-\x7e]*")
_BLANKS = re.compile(r"([ \t]+)")
_ENCODED_WORD = re.compile(r"=\?([^?*\s]+)\?([QqBb])\?([^?\s]*)\?=")
_Q_BYTE = re.compile(rb"=([a-fA-F0-9]{2})")
_SURROGATE = re.compile("[\ud800-\udfff]")


def unstructured_text(value: str) -> str | None:
    """The header's text as the modern parser gives it, or None when it is not plain."""
    value = _LINE_BREAK.sub("", value)
    if not _PLAIN.fullmatch(value):
        return None
    if "=?" not in value:
        return value
    pieces: list[str] = []
    after_word = False  # the last word was an encoded word
    pending_blank = ""
    for token in _BLANKS.split(value):
        if not token:
            continue
        if token[0] in " \t":
            pending_blank = token
            continue
        word = _ENCODED_WORD.fullmatch(token)
        if word is None:
            if "=?" in token:
                return None
            pieces.append(pending_blank + token)
            after_word = False
        else:
            text = _decode_word(*word.groups())
            if text is None:
                return None
            pieces.append(("" if after_word else pending_blank) + text)
            after_word = True
        pending_blank = ""
    return "".join(pieces) + pending_blank


def _decode_word(charset: str, encoding: str, text: str) -> str | None:
    data = text.encode("ascii")
    if encoding in "Qq":
        data = _Q_BYTE.sub(lambda m: bytes.fromhex(m.group(1).decode()), data.replace(b"_", b" "))
    else:
        if len(data) % 4:
            return None
        try:
            data = base64.b64decode(data, validate=True)  # what the modern parser calls
        except (binascii.Error, ValueError):
            return None
    try:
        decoded = data.decode(charset)
    except (LookupError, ValueError):  # ValueError: UnicodeError and its kinds
        return None
    return None if _SURROGATE.search(decoded) else decoded
