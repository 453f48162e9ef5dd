"""Base64 bodies: a well-formed one is decoded by pybase64 (parts._well_formed_base64), and
it must give the bytes the standard library's get_payload(decode=True) gives, with no
defect; anything else goes to the standard library's lenient decoding, defects and all."""

from __future__ import annotations

import base64
import copy
import random
from email.message import Message

import pytest

from common.errors import UnparseableMail
from services.processor.parsing import guard, parts, policies
from services.processor.parsing.entity import read_entity
from services.processor.parsing.model import ParseLimits
from tests.support.corpus import CORPORA, corpus_files


def _part(body: str, cte: str = "base64") -> Message:
    part = Message()
    part["Content-Type"] = "application/pdf"
    part["Content-Transfer-Encoding"] = cte
    part.set_payload(body)
    return part


def _stdlib(part: Message) -> tuple[bytes, list[str]]:
    alone = copy.deepcopy(part)
    data = alone.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data, [type(d).__name__ for d in alone.defects]


def _wrapped(data: bytes, line: int, end: str) -> str:
    text = base64.b64encode(data).decode("ascii")
    return end.join(text[i : i + line] for i in range(0, len(text), line)) + end


_rng = random.Random(19)
WELL_FORMED = [
    "",
    "QQ==",
    "QUI=",
    "QUJD",
    _wrapped(b"%PDF-1.7 invoice", 76, "\r\n"),
    _wrapped(_rng.randbytes(59_000), 76, "\r\n"),
    _wrapped(_rng.randbytes(1_001), 64, "\n"),
    _wrapped(_rng.randbytes(1_002), 72, "\r"),
    _wrapped(_rng.randbytes(3_000), 76, "\r\n").rstrip("\r\n"),  # no final line end
    _wrapped(_rng.randbytes(100), 76, "\r\n") + "\r\n\r\n",  # blank lines after it
]
MALFORMED = [
    "QQ",  # padding missing
    "QUJDRA",  # padding missing after whole groups
    "Q",  # one character too many
    "QQ==QUJD",  # padding in the middle
    "QQ==\r\nQUJD\r\n",  # padding on an earlier line
    "QU JD",  # a space
    "QUJD\tRUZH",  # a tab
    "QUJD!RUZH",  # not in the alphabet
    "QUJD-_ZH",  # the URL-safe alphabet
    "QUJD=",  # padding after a whole group
    "====",
    "A===",
    "QUJD\x00RUZH",  # a NUL
    "QUJD\u00e9RUZH",  # not ASCII
    "QUJD\udce9RUZH",  # an 8-bit byte as the parser keeps it (surrogate-escaped)
]


@pytest.mark.parametrize("body", WELL_FORMED, ids=range(len(WELL_FORMED)))
def test_well_formed_base64_is_decoded_by_pybase64_as_the_standard_library_decodes_it(
    body: str,
) -> None:
    part = _part(body)
    expected, stdlib_defects = _stdlib(part)
    assert stdlib_defects == []
    assert parts._well_formed_base64(part) == expected
    defects: list[str] = []
    assert parts.payload(part, defects) == expected
    assert defects == []
    assert part.defects == []


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_base64_is_left_to_the_standard_librarys_lenient_decoding(body: str) -> None:
    part = _part(body)
    expected, stdlib_defects = _stdlib(part)
    assert parts._well_formed_base64(part) is None
    assert parts.payload(part, []) == expected
    assert [type(d).__name__ for d in part.defects] == stdlib_defects


@pytest.mark.parametrize("cte", ["quoted-printable", "7bit", "x-uuencode", "base 64", ""])
def test_other_transfer_encodings_are_not_read_as_base64(cte: str) -> None:
    part = _part("QUJD", cte)
    assert parts._well_formed_base64(part) is None
    assert parts.payload(part, []) == _stdlib(part)[0]


def test_an_upper_case_transfer_encoding_is_base64_as_for_the_standard_library() -> None:
    part = _part(_wrapped(b"factura", 76, "\r\n"), "BASE64")
    assert parts._well_formed_base64(part) == b"factura"


@pytest.mark.parametrize("corpus", CORPORA)
def test_every_base64_part_of_the_corpora_decodes_as_the_standard_library_decodes_it(
    corpus: str,
) -> None:
    """Part by part: each base64 leaf pybase64 takes decodes to the standard library's bytes."""
    taken = 0
    limits = ParseLimits()
    for path in corpus_files(corpus):
        try:
            checked = guard.check_input(path.read_bytes(), limits)
        except UnparseableMail:
            continue
        for part in read_entity(checked, limits, policies.modern(limits)).walk():
            if part.is_multipart():
                continue
            data = parts._well_formed_base64(part)
            if data is not None:
                taken += 1
                assert data == _stdlib(part)[0], path.name
    assert taken > 0


_EDITS = [" ", "\t", "=", "==", "!", "-", "_", "\n", "\r", "\r\n", "\x00", "A", "/", ""]


def _mutated(rng: random.Random) -> str:
    """A body in CRLF lines of one width, with up to three random edits (inserted
    characters, line ends or padding; deleted or replaced characters), or none."""
    body = _wrapped(rng.randbytes(rng.randrange(0, 300)), rng.choice([4, 60, 64, 76]), "\r\n")
    if rng.random() < 0.3:
        body = body.rstrip("\r\n")
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        at = rng.randrange(len(body) + 1)
        skip = rng.choice([0, 0, 1])
        body = body[:at] + rng.choice(_EDITS) + body[at + skip :]
    return body


def test_crlf_lines_are_decoded_in_place_exactly_when_the_standard_library_sees_no_defect() -> None:
    """The in-place decode of even CRLF lines (parts._decode_even_crlf_lines) against the
    standard library on 5,000 bodies, well formed and subtly broken: whatever it decodes
    the standard library decodes to the same bytes with no defect; what it declines goes to
    the general path. The ordinary layout, the bench's PDF as IMAP serves it, takes it."""
    rng = random.Random(1928)
    decoded_in_place = 0
    for _ in range(5_000):
        body = _mutated(rng)
        data = parts._decode_even_crlf_lines(body.encode("ascii"))
        if data is None:
            continue
        decoded_in_place += 1
        assert _stdlib(_part(body)) == (data, []), repr(body)
    assert decoded_in_place > 1_000
    pdf = _wrapped(_rng.randbytes(59_000), 76, "\r\n").encode("ascii")
    assert parts._decode_even_crlf_lines(pdf) == base64.b64decode(pdf)


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_base64_in_crlf_lines_is_left_to_the_standard_library(body: str) -> None:
    """The same malformed bodies cut into CRLF lines of four characters."""
    part = _part("\r\n".join(body[i : i + 4] for i in range(0, len(body), 4)) + "\r\n")
    expected, stdlib_defects = _stdlib(part)
    assert stdlib_defects
    assert parts._well_formed_base64(part) is None
    assert parts.payload(part, []) == expected
