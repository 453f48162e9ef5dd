"""IMAP framing: a command or response is a line plus any literals it announces.

RFC 3501 §4.3 / RFC 7888: a line ending in `{N}` (synchronizing) or `{N+}` (LITERAL+) is
followed by exactly N raw bytes and then the rest of the line. The proxy keeps those bytes
untouched, so message bodies in FETCH and APPEND pass through byte-exact.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

LINE_LIMIT = 1 << 20
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r?\n\Z")


@dataclass(frozen=True)
class Literal:
    size: int
    synchronizing: bool


def literal_at_end(line: bytes) -> Literal | None:
    """The literal a line announces at its end, if any."""
    found = _LITERAL.search(line)
    if found is None:
        return None
    return Literal(int(found.group(1)), synchronizing=not found.group(2))


async def read_line(reader: asyncio.StreamReader) -> bytes:
    """One CRLF-terminated line; raises EOFError when the peer is gone."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise EOFError from exc
    return line


async def read_literal(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise EOFError from exc


@dataclass
class Response:
    """A server response: its first line, then (literal, continuation line) pairs."""

    parts: list[bytes] = field(default_factory=list)

    @property
    def first(self) -> bytes:
        return self.parts[0]

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


async def read_response(reader: asyncio.StreamReader) -> Response:
    """A whole response, literals included (responses never wait for a continuation)."""
    response = Response([await read_line(reader)])
    while (literal := literal_at_end(response.parts[-1])) is not None:
        response.parts.append(await read_literal(reader, literal.size))
        response.parts.append(await read_line(reader))
    return response


@dataclass(frozen=True)
class Command:
    """The first line of a client command, split into tag, verb and the rest."""

    line: bytes
    tag: str
    verb: str
    args: str

    @property
    def literal(self) -> Literal | None:
        return literal_at_end(self.line)


def parse_command(line: bytes) -> Command:
    """`tag VERB args` → Command; `UID FETCH` gives verb `UID FETCH`.

    Unparseable lines get an empty verb; the server answers them with BAD.
    """
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    words = text.split(" ", 2)
    tag = words[0] if words else ""
    verb = words[1].upper() if len(words) > 1 else ""
    args = words[2] if len(words) > 2 else ""
    if verb == "UID" and args:
        sub, _, args = args.partition(" ")
        verb = f"UID {sub.upper()}"
    return Command(line, tag, verb, args)


def split_response(line: bytes) -> tuple[str, str, str]:
    """`* 3 FETCH (…)` → ("*", "3", "FETCH (…)"); `a1 OK text` → ("a1", "OK", "text")."""
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    first, _, rest = text.partition(" ")
    second, _, rest = rest.partition(" ")
    return first, second, rest
