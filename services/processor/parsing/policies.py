"""Email policies whose header parsing is bounded in cost."""

from __future__ import annotations

from email.policy import EmailPolicy, compat32
from typing import Any

from .model import ParseLimits


class BoundedPolicy(EmailPolicy):
    """``email.policy.default`` that truncates a header value before parsing it.

    The modern header parser is slow on long structured values (about 20 µs a byte on
    address lists), and the feed parser itself reads Content-Type while parsing, so the
    bound has to sit in the policy rather than around our own header reads.
    """

    max_header_bytes: int = ParseLimits.max_header_bytes

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if len(value) > self.max_header_bytes:
            value = value[: self.max_header_bytes]
        return super().header_fetch_parse(name, value)


def modern(limits: ParseLimits) -> BoundedPolicy:
    return BoundedPolicy(max_header_bytes=limits.max_header_bytes)


def header_cap(policy: object) -> int | None:
    """The header bound a message's policy enforces, None for unbounded ones."""
    return getattr(policy, "max_header_bytes", None)


LEGACY = compat32
