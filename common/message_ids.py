"""The one form of a Message-ID that Bandeja stores: whatever a sender put in the header.

The value comes from anyone who can send mail. PostgreSQL text refuses NUL, and an index
row must stay under the b-tree limit (about 2,700 bytes, "index row size exceeds btree
maximum"); a folded Message-ID of a few KB, or one NUL byte in it, would otherwise be
refused on every retry (https://www.postgresql.org/docs/current/btree.html).
"""

from __future__ import annotations

import re

# RFC 5322 2.1.1: no line longer than 998 characters; a real Message-ID is far shorter.
MAX_MESSAGE_ID_CHARS = 998
_WHITESPACE = re.compile(r"\s+")
# C0 controls and DEL: never part of an msg-id (RFC 5322 3.6.4 allows printable ASCII).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_message_id(value: str | None) -> str | None:
    """Unfolded, control characters dropped, non-ASCII as ``?``, at most 998 characters;
    None when nothing is left."""
    if value is None:
        return None
    text = _CONTROLS.sub("", value)
    text = _WHITESPACE.sub(" ", text).strip()
    # Surrogate escapes (raw 8-bit header bytes) and other non-ASCII cannot be encoded
    # as sent; "?" keeps the length and says something was there.
    text = text.encode("ascii", "replace").decode("ascii")
    return text[:MAX_MESSAGE_ID_CHARS] or None
