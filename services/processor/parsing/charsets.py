"""Turning body and header bytes into text when the declared charset lies or is missing."""

from __future__ import annotations

import codecs

# Mailers label Windows-1252 text as ISO-8859-1 or US-ASCII all the time; cp1252 is the
# usual truth (WHATWG Encoding maps both labels to windows-1252 for the same reason).
_FALLBACKS = ("utf-8", "cp1252")


def _text_codec(name: str) -> str | None:
    """Return the codec's canonical name if it is a text encoding Python knows."""
    try:
        info = codecs.lookup(name.strip().strip('"').lower())
    except (LookupError, ValueError, TypeError):
        return None
    # rot13 and base64_codec are codecs but not text encodings: bytes.decode refuses them.
    if _try(b"", info.name) is None:
        return None
    return info.name


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError, ValueError, TypeError):
        return None


def decode_text(data: bytes, declared: str | None, defects: list[str], where: str) -> str:
    """Decode with the declared charset, then utf-8, then cp1252, then latin-1.

    Every step past the declared one records a defect naming ``where``; latin-1 cannot
    fail, so this always returns text.
    """
    if declared:
        codec = _text_codec(declared)
        if codec is None:
            defects.append(f"{where}: unknown charset {declared[:40]!r}")
        else:
            text = _try(data, codec)
            if text is not None:
                return text
            defects.append(f"{where}: bytes are not valid {codec}")
    for codec in _FALLBACKS:
        text = _try(data, codec)
        if text is not None:
            # Undeclared 8-bit UTF-8 is so common that it is not worth a defect.
            if declared or codec != "utf-8":
                defects.append(f"{where}: decoded as {codec}")
            return text
    defects.append(f"{where}: decoded as latin-1")
    return data.decode("latin-1")
