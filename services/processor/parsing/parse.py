"""``parse_message``: raw RFC 5322 bytes in, a :class:`ParsedMail` or ``UnparseableMail`` out.

Only ``UnparseableMail`` ever leaves this module. It is raised when a limit is hit, and
when nothing usable can be read: empty input, or bytes with no mail headers that are
binary rather than text (an Outlook ``.msg`` file, an image). Headerless *text* is kept
as a best-effort mail whose body is that text, with a defect saying so.
"""

from __future__ import annotations

import email.parser
from email.message import Message
from email.policy import Policy

from common.errors import UnparseableMail

from . import guard, policies
from .assemble import assemble, headers_only
from .charsets import decode_text
from .entity import read_entity
from .model import ParsedMail, ParseLimits
from .walk import Bodies, Walk, walk

_DEFAULT_LIMITS = ParseLimits()


def parse_message(raw: bytes, limits: ParseLimits = _DEFAULT_LIMITS) -> ParsedMail:
    """Parse one mail; see the module docstring for when it raises."""
    try:
        return _parse(raw, limits)
    except UnparseableMail:
        raise
    except RecursionError as exc:
        raise UnparseableMail("structure nested too deeply for the parser") from exc
    except Exception as exc:
        raise UnparseableMail(f"unexpected {type(exc).__name__} while parsing") from exc


def parse_headers_only(raw_head: bytes) -> ParsedMail:
    """Headers of a mail too large to parse whole; no bodies, no attachments."""
    try:
        data = guard.check_input(raw_head, _DEFAULT_LIMITS)
        parser = email.parser.BytesParser(policy=policies.modern(_DEFAULT_LIMITS))
        return headers_only(parser.parsebytes(data, headersonly=True), [])
    except UnparseableMail:
        raise
    except Exception as exc:
        raise UnparseableMail(f"unexpected {type(exc).__name__} reading headers") from exc


def _parse(raw: bytes, limits: ParseLimits) -> ParsedMail:
    data = guard.check_input(raw, limits)
    try:
        return _walk_with(data, policies.modern(limits), limits, [])
    except UnparseableMail:
        raise
    except Exception as exc:  # noqa: BLE001 - retried with the lenient legacy policy below
        defect = f"modern email policy failed ({type(exc).__name__}); parsed with compat32"
        return _walk_with(data, policies.LEGACY, limits, [defect])


def _walk_with(data: bytes, policy: Policy, limits: ParseLimits, defects: list[str]) -> ParsedMail:
    message = read_entity(data, limits, policy)
    if not message.keys():
        return _headerless(data)
    state = Walk(limits, policy, defects=defects)
    bodies = Bodies()
    walk(message, state, bodies, 0, "mail")
    _collect_parser_defects(message, state.defects)
    if policies.header_budget_spent(policy):
        state.defects.append(
            f"headers past the first {limits.max_parsed_header_bytes} bytes read leniently,"
            " each cut to 1024 bytes"
        )
    return assemble(message, state, bodies)


def _collect_parser_defects(message: Message, defects: list[str]) -> None:
    seen = set()
    for part in message.walk():
        for defect in getattr(part, "defects", []):
            seen.add(type(defect).__name__)
    defects.extend(sorted(seen))


def _headerless(data: bytes) -> ParsedMail:
    if guard.looks_binary(data):
        raise UnparseableMail("no mail headers and the content is binary, not a MIME message")
    defects = ["no mail headers: not a MIME message; kept the text as the body"]
    text = decode_text(data, None, defects, "body")
    return ParsedMail.bodiless(text, defects)
