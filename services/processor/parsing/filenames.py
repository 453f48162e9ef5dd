"""Storage-safe attachment names, derived from whatever the sender claimed.

The original name is kept separately as data; what is made here only has to be safe to
use as a file or object name on any platform and unique within one mail.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata

MAX_NAME_BYTES = 200
_MAX_EXT_CHARS = 16
# Characters Windows forbids in names, plus both path separators.
_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')
_DOTS = re.compile(r"\.{2,}")
_SPACES = re.compile(r"\s+")
# Device names Windows reserves whatever the extension (CON.txt is still CON).
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
)
# Fixed so that names do not depend on the host's /etc/mime.types.
_EXTENSIONS = {
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/xml": ".xml",
    "application/xml": ".xml",
    "application/pdf": ".pdf",
    "application/octet-stream": ".bin",
    "application/ms-tnef": ".dat",
    "application/pkcs7-mime": ".p7m",
    "application/x-pkcs7-mime": ".p7m",
    "application/pkcs7-signature": ".p7s",
    "application/zip": ".zip",
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
}


def extension_for(content_type: str) -> str:
    """A conventional extension for a content type, ``.bin`` when none is known."""
    ext = _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type)
    return ext or ".bin"


def default_name(content_type: str, index: int) -> str:
    """The name given to a part that came without one."""
    stem = "invite" if content_type == "text/calendar" else f"attachment-{index}"
    return stem + extension_for(content_type)


def _clean(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    # Keep only the last path component: a sender's folders mean nothing here.
    name = re.split(r"[/\\]", name)[-1]
    # Tabs and line breaks (from folded headers) separate words; other controls go.
    name = _SPACES.sub(" ", name)
    # Cc are control characters; Cf includes the bidi overrides used to disguise extensions.
    name = "".join(c for c in name if unicodedata.category(c) not in {"Cc", "Cf", "Cs"})
    name = _FORBIDDEN.sub("_", name)
    name = _DOTS.sub(".", name)
    # Leading dots hide files; trailing dots and spaces are dropped by Windows.
    return name.strip(" .")


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > _MAX_EXT_CHARS:
        return name, ""
    return stem, "." + ext


def _truncate_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", errors="ignore")


def _bound(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, ext = _split_ext(name)
    room = MAX_NAME_BYTES - len(ext.encode("utf-8"))
    return _truncate_bytes(stem, room).rstrip(" .") + ext


def sanitise(name: str | None, fallback: str) -> str:
    """Make ``name`` safe for storage, or use ``fallback`` when nothing safe is left."""
    cleaned = _clean(name or "")
    if not cleaned:
        cleaned = fallback
    if cleaned.split(".")[0].strip().upper() in _RESERVED:
        cleaned = "_" + cleaned
    return _bound(cleaned)


class NameRegistry:
    """Hands out names unique within one mail: ``a.pdf``, ``a (1).pdf``, ``a (2).pdf``."""

    def __init__(self) -> None:
        # Case-folded, because the store may sit on a case-insensitive file system.
        self._taken: set[str] = set()

    def claim(self, name: str) -> str:
        candidate, counter = name, 0
        stem, ext = _split_ext(name)
        while candidate.casefold() in self._taken:
            counter += 1
            suffix = f" ({counter})"
            room = MAX_NAME_BYTES - len((suffix + ext).encode("utf-8"))
            candidate = _truncate_bytes(stem, room) + suffix + ext
        self._taken.add(candidate.casefold())
        return candidate
