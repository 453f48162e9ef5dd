"""Email policies whose header parsing is bounded in cost."""

from __future__ import annotations

import re
from email.policy import EmailPolicy, compat32
from functools import lru_cache
from typing import Any

from .model import ParseLimits
from .unstructured import unstructured_text

# JavaMail and others send boundary=----=_Part_1_2.3 unquoted; RFC 2045 5.1 requires
# quotes for "=", and the modern parser then reads the boundary as "----" and loses every
# part. compat32 reads it as intended; quoting it restores that reading.
_UNQUOTED_BOUNDARY = re.compile(r'(boundary\s*=\s*)([^"\s;][^\s;]*=[^\s;]*)', re.IGNORECASE)


def _quote_boundary(match: re.Match[str]) -> str:
    return f'{match.group(1)}"{match.group(2)}"'


# Content-Type and Content-Disposition are only ever read through Message methods that
# split the value's text with compat32's parameter parser (get_content_type, get_param,
# get_boundary, get_filename): the modern header object, 31-37 µs to build, was used
# only as a string. A plain value is therefore kept as the text it is: printable ASCII on
# one line, a type, and parameters whose names are tokens (no RFC 2231 "*") and whose
# values are tokens or quoted strings without escapes (RFC 2045 5.1), no encoded words.
# For those the methods give what they gave through the header object
# (tests/unit/processor/test_parsing_policies.py); anything else is parsed as before.
_PARAMETER_HEADERS = frozenset({"content-type", "content-disposition"})
_MIME_ATOM = r"[A-Za-z0-9!#$&+.^_`|~-]+"
_PLAIN_PARAMETER = rf'[A-Za-z0-9-]+=(?:"[ !#-\[\]-~]*"|{_MIME_ATOM})'
_PLAIN_MIME = re.compile(rf"[ ]?{_MIME_ATOM}(?:/{_MIME_ATOM})?(?:[ ]?;[ ]?{_PLAIN_PARAMETER})*[ ]?")
_PARAMETER_NAME = re.compile(r";[ ]?([A-Za-z0-9-]+)=")


def _is_plain_mime(value: str) -> bool:
    if "=?" in value or not _PLAIN_MIME.fullmatch(value):
        return False
    # A repeated parameter reads differently: the header object keeps the first only.
    names = [name.lower() for name in _PARAMETER_NAME.findall(value)]
    return len(names) == len(set(names))


# What is left of a header value once the mail's header budget is spent: enough for a
# Content-Type with its boundary and charset, or a long file name.
_LENIENT_HEADER_BYTES = 1024


class HeaderBudget:
    """The header bytes one mail may have parsed by the modern header parser.

    That parser costs 10-20 µs a byte on hostile structured values (``a=b; `` repeated in
    a Content-Type): capping each value is not enough when a mail has a thousand parts,
    each with its own 16 KiB Content-Type (about 190 s of CPU). Past the budget, values are
    read as compat32 reads them (plain strings, split by regular expressions), as the
    legacy fallback of the whole parse would, and cut to their first KiB.
    """

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.spent = False
        self._granted: set[tuple[str, str]] = set()
        # What each (name, value) this mail asked for gave: the feed parser and the walk
        # ask for a part's Content-Type about five times, and everything below (the
        # boundary fix-up, the budget, the shared cache) gives the same answer each time.
        self.fetched: dict[tuple[str, str], Any] = {}

    def grants(self, name: str, value: str) -> bool:
        key = (name.lower(), value)
        if key in self._granted:  # asked again for the same header: already paid for
            return True
        if len(value) > self.left:
            self.spent = True
            return False
        self.left -= len(value)
        self._granted.add(key)
        return True


class BoundedPolicy(EmailPolicy):
    """``email.policy.default`` that truncates a header value before parsing it, and
    parses it with the modern header parser only while the mail's budget lasts.

    The modern header parser is slow on long structured values (about 20 µs a byte on
    address lists), and the feed parser itself reads Content-Type while parsing, so the
    bound has to sit in the policy rather than around our own header reads.
    """

    max_header_bytes: int = ParseLimits.max_header_bytes
    header_budget: HeaderBudget | None = None

    def header_fetch_parse(self, name: str, value: str) -> Any:
        budget = self.header_budget
        if budget is None:
            return self._fetch_parse(name, value)
        key = (name, value)
        header = budget.fetched.get(key)
        if header is None:
            header = budget.fetched[key] = self._fetch_parse(name, value)
        return header

    def _fetch_parse(self, name: str, value: str) -> Any:
        if len(value) > self.max_header_bytes:
            value = value[: self.max_header_bytes]
        lowered = name.lower()
        if lowered == "content-type":
            value = _UNQUOTED_BOUNDARY.sub(_quote_boundary, value)
        if lowered in _PARAMETER_HEADERS and _is_plain_mime(value):
            return value
        if self.header_budget is not None and not self.header_budget.grants(name, value):
            # compat32's parameter parsing copies the rest of the value for each parameter
            # (email.message._parseparam): quadratic, so short values only.
            return compat32.header_fetch_parse(name, value[:_LENIENT_HEADER_BYTES])
        # The Subject is only ever read as text (headers.text_header): a plain one is that
        # text, without its header object (unstructured.py).
        if lowered == "subject" and (text := unstructured_text(value)) is not None:
            return text
        return _parsed_header(name, value)


@lru_cache(maxsize=256)
def _parsed_header(name: str, value: str) -> Any:
    """The header object for one (name, value), parsed once.

    The email package parses a header again on every ``Message.get``, and the feed parser
    and the walk ask for Content-Type several times per part: that was half the parse time
    of a typical mail. Header objects are immutable ``str`` subclasses, so sharing one is
    safe. The cache is small on purpose: each header object keeps its parse tree (several
    KB), and 4,096 entries made a processor's memory grow for thousands of mails
    (BENCHMARKS.md, memory). 256 still covers every repeated lookup within one mail and the
    values common to all mail (``application/pdf``, ``base64``…).
    """
    return _HEADER_PARSER.header_fetch_parse(name, value)


# The stock policy's parsing, with the default header registry; the bounding and boundary
# fix-up above have already been applied to what reaches it.
_HEADER_PARSER = EmailPolicy()


def modern(limits: ParseLimits) -> BoundedPolicy:
    # Policy attributes are set through the constructor's keywords (email._policybase).
    """A bounded policy for one mail (its header budget is that mail's alone)."""
    policy: BoundedPolicy = BoundedPolicy(  # type: ignore[call-overload]
        max_header_bytes=limits.max_header_bytes,
        header_budget=HeaderBudget(limits.max_parsed_header_bytes),
    )
    return policy


def header_budget_spent(policy: object) -> bool:
    budget = getattr(policy, "header_budget", None)
    return bool(budget is not None and budget.spent)


def header_cap(policy: object) -> int | None:
    """The header bound a message's policy enforces, None for unbounded ones."""
    return getattr(policy, "max_header_bytes", None)


LEGACY = compat32
