"""A faster way to the same MIME tree for well-formed mail: split on boundaries, parse
only the headers.

The standard feed parser reads a mail line by line in Python and tests every line against
every open boundary; on a 60 KB mail with a base64 attachment that loop is most of the
parse. Here each multipart body is cut at its delimiter lines with ``str.find`` (C speed),
and only each part's header block goes through the standard parser, with the same policy,
so header objects, defects and the header budget are the feed parser's own. A leaf's body
is set as the payload exactly as the feed parser would have joined its lines.

It covers only what it can reproduce exactly: LF or CRLF line ends, every part with a
header block ended by a blank line and no defect in it, every multipart with its
boundary, a start and a close delimiter and no empty parts, no ``message/*`` part but
``message/rfc822`` and ``message/global``, no ``multipart/digest`` (other default types).
Anything else returns None and the caller parses with the feed parser, as before. Only
header blocks and leaf bodies are copied out of the mail, never a line at a time, and
each level is scanned once, so the cost is linear in the mail's size times its nesting.
It runs before ``guard.check_structure`` (entity.py), so it bounds itself: past
``max_depth`` levels, ``max_parts`` parts, or ``max_parts`` delimiter lines in one
multipart it declines, and the guard then judges the mail for the feed parser.
"""

from __future__ import annotations

import email.parser
import itertools
import re
from email.message import Message
from email.policy import Policy

from .model import ParseLimits

_PLAIN_MULTIPART_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
# A CR that does not start a CRLF: a line end to the feed parser, not to str.find below.
_LONE_CR = re.compile(r"\r(?!\n)")
# The blank line that ends a header block, LF LF or LF CR LF.
_BLANK_LINE = re.compile(r"\n\r?\n")
# Read by the feed parser as a whole message inside the part (as is every message/* type
# but delivery-status; the rarer ones are left to it).
_NESTED_MESSAGES = frozenset({"message/rfc822", "message/global"})
# A field's first line as the feed parser's headerRE accepts it, with a name.
_FIELD_START = re.compile(r"[\x21-\x39\x3b-\x7e]+:")


class _NotPlain(Exception):
    """The mail has something only the feed parser reproduces; parse it with that."""


def split_tree(data: bytes, limits: ParseLimits, policy: Policy) -> Message | None:
    """The tree ``BytesParser(policy).parsebytes(data)`` gives, or None if this mail
    is not one this module reproduces exactly."""
    # BytesParser reads the mail as ASCII with surrogate escapes; so do we, once.
    text = data.decode("ascii", "surrogateescape")
    if "\r" in text and _LONE_CR.search(text):
        return None
    try:
        return _Splitter(text, limits, policy).entity(0, len(text), 0)
    except _NotPlain:
        return None


class _Splitter:
    """Entities are spans of the mail's one text, ``[start, end)``: only header blocks and
    each leaf's body are copied out of it. Slicing every level's body, then each part,
    then each part's body copied a big attachment four times (a third of a 1 MB mail's
    split)."""

    def __init__(self, text: str, limits: ParseLimits, policy: Policy) -> None:
        self.text = text
        self.limits = limits
        self.policy = policy
        self.parts = 0

    def entity(
        self, start: int, end: int, depth: int, *, before_delimiter: bool = False
    ) -> Message:
        """The span as a message; ``before_delimiter`` when a delimiter line follows it,
        whose line end (RFC 2046 5.1.1) the feed parser takes off the last body read."""
        self.parts += 1
        if self.parts > self.limits.max_parts or depth > self.limits.max_depth:
            raise _NotPlain
        head, body = _head_and_body(self.text, start, end)
        message = _plain_header_block(head, self.policy)
        if message is None:
            parser = email.parser.Parser(policy=self.policy)
            message = parser.parsestr(head, headersonly=True)
        if message.defects or not message.keys():
            raise _NotPlain
        ctype = message.get_content_type()
        # What get_content_maintype() returns, without reading the header twice more.
        maintype = ctype.split("/")[0]
        if ctype in _NESTED_MESSAGES:
            # The feed parser reads the body as a message of its own, in the same stream.
            inner = self.entity(body, end, depth + 1, before_delimiter=before_delimiter)
            message.set_payload([inner])
        elif maintype == "message" or ctype == "multipart/digest":
            raise _NotPlain
        elif maintype == "multipart":
            self._multipart(message, body, end, depth)
        else:
            if before_delimiter:
                end = _without_last_line_end(self.text, body, end)
            message.set_payload(self.text[body:end])
        return message

    def _multipart(self, message: Message, start: int, end: int, depth: int) -> None:
        boundary = message.get_boundary()
        encoding = str(message.get("content-transfer-encoding", "8bit")).lower()
        if not boundary or encoding not in _PLAIN_MULTIPART_ENCODINGS:
            raise _NotPlain
        parts = _parts(self.text, start, end, "--" + boundary, self.limits.max_parts)
        children: list[Message | str] = [
            self.entity(part_start, part_end, depth + 1, before_delimiter=True)
            for part_start, part_end in parts
        ]
        message.set_payload(children)


def _plain_header_block(head: str, policy: Policy) -> Message | None:
    """The message ``Parser(policy).parsestr(head, headersonly=True)`` gives, for a header
    block of field lines and their continuations only; None for anything else (a first
    line that continues nothing, an envelope ``From`` line, a line without a field name),
    which the parser reads with its defects.

    The same policy calls (``header_source_parse``, ``set_raw``) as the feed parser's
    ``_parse_headers``, without its line-by-line push parser: a part's header block is
    read in a few string operations instead of a Python loop per line and per
    character class.
    """
    lines = head.split("\n")
    if lines.pop() != "":  # the head ends with its last line end
        return None
    fields: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and fields:
            fields[-1].append(line + "\n")
        elif _FIELD_START.match(line) and not line.startswith("From "):
            fields.append([line + "\n"])
        else:
            return None
    factory = policy.message_factory or Message
    message: Message = factory(policy=policy)
    for field in fields:
        message.set_raw(*policy.header_source_parse(field))
    message.set_payload("")  # what the parser leaves after the headers (headersonly)
    return message


def _head_and_body(text: str, start: int, end: int) -> tuple[str, int]:
    """The span's header block (with its last line end), and where its body starts,
    after the blank line."""
    # One search that stops at the first blank line of either kind: two str.find calls
    # (for LF LF and for LF CR LF) each scanned the whole entity when that kind was absent,
    # 0.8 ms per MB of mail.
    blank = _BLANK_LINE.search(text, start, end)
    if blank is None:
        raise _NotPlain
    return text[start : blank.start() + 1], blank.end()


def _without_last_line_end(text: str, start: int, end: int) -> int:
    """The span's end without its last line end, if it has one."""
    if text.endswith("\r\n", start, end):
        return end - 2
    return end - 1 if text.endswith("\n", start, end) else end


def _parts(
    text: str, start: int, end: int, delimiter: str, max_parts: int
) -> list[tuple[int, int]]:
    """The spans between consecutive delimiter lines, up to the close delimiter; the
    preamble and epilogue are dropped, as nothing reads them."""
    lines = _delimiter_lines(text, start, end, delimiter, max_parts)
    if len(lines) < 2 or not lines[-1][2]:
        raise _NotPlain
    parts = [(after, begin) for (_, after, _), (begin, _, _) in itertools.pairwise(lines)]
    if not all(after < begin for after, begin in parts):
        # Adjacent delimiters: the feed parser skips them, makes no part.
        raise _NotPlain
    return parts


def _delimiter_lines(
    text: str, start: int, end: int, delimiter: str, max_parts: int
) -> list[tuple[int, int, bool]]:
    """(line start, next line start, is the close delimiter) of each line of the span the
    feed parser's boundary pattern matches, up to the first close delimiter. More than
    ``max_parts`` parts' worth declines before the list grows with a hostile mail."""
    found: list[tuple[int, int, bool]] = []
    if text.startswith(delimiter, start, end):
        at = start
    else:
        at = _next_line_starting(text, delimiter, start, end)
    while at >= 0:
        if len(found) > max_parts:
            raise _NotPlain
        rest = at + len(delimiter)
        close = text.startswith("--", rest, end)
        newline = text.find("\n", rest, end)
        line_end = end if newline < 0 else newline
        if _blank_to_line_end(text[rest + 2 if close else rest : line_end]):
            found.append((at, line_end if newline < 0 else newline + 1, close))
            if close:
                break
        at = _next_line_starting(text, delimiter, rest, end)
    return found


def _next_line_starting(text: str, prefix: str, start: int, end: int) -> int:
    at = text.find("\n" + prefix, start, end)
    return at + 1 if at >= 0 else -1


def _blank_to_line_end(tail: str) -> bool:
    # The feed parser's pattern after the boundary: [ \t]* then the line end (a CR
    # before the LF is part of a CRLF; split_tree refused any other CR).
    return tail.rstrip("\r").strip(" \t") == "" and tail.count("\r") <= 1
