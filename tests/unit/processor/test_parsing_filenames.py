"""Storage-safe names from hostile attachment names."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from services.processor.parsing import parts, policies
from services.processor.parsing.filenames import MAX_NAME_BYTES, NameRegistry, sanitise
from services.processor.parsing.model import ParseLimits


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\system32\\cmd.exe", "cmd.exe"),
        ("C:\\Users\\x\\factura.pdf", "factura.pdf"),
        (".bashrc", "bashrc"),
        ("...", "attachment-1.bin"),
        ("..", "attachment-1.bin"),
        ("", "attachment-1.bin"),
        (None, "attachment-1.bin"),
        ("a\x00b\x07c.pdf", "abc.pdf"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ('a<b>c:d"e|f?g*.pdf', "a_b_c_d_e_f_g_.pdf"),
        ("report..pdf", "report.pdf"),
        ("trailing. . ", "trailing"),
        ("line\r\nbreak.pdf", "line break.pdf"),
        ("tab\tname.pdf", "tab name.pdf"),
        ("Cotización.pdf", "Cotización.pdf"),
    ],
)
def test_hostile_names_are_made_safe(given: str | None, expected: str) -> None:
    """Paths, controls, bidi tricks, reserved devices and dot games are neutralised."""
    assert sanitise(given, "attachment-1.bin") == expected


def test_long_names_are_bounded_keeping_the_extension() -> None:
    """Names over 200 UTF-8 bytes are cut at a character boundary, extension kept."""
    name = sanitise("ñ" * 500 + ".pdf", "x.bin")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.endswith(".pdf")
    assert name.startswith("ñ")


def test_registry_deduplicates_case_insensitively() -> None:
    """Names differing only in case collide on some stores, so they are suffixed too."""
    registry = NameRegistry()
    assert [registry.claim(n) for n in ("A.pdf", "a.pdf", "a.PDF", "b")] == [
        "A.pdf",
        "a (1).pdf",
        "a (2).PDF",
        "b",
    ]


def test_registry_keeps_suffixed_names_bounded() -> None:
    """A suffix on a name already at the bound does not push it past the bound."""
    registry = NameRegistry()
    long = sanitise("x" * 300 + ".pdf", "y")
    registry.claim(long)
    assert len(registry.claim(long).encode()) <= MAX_NAME_BYTES


# Content-Disposition values read without the header parser (plain: printable ASCII on
# one line, tokens or quoted strings without escapes, one filename) ...
_PLAIN_FORMS = [
    'attachment; filename="factura-1000.pdf"',
    "attachment; filename=factura.pdf",
    'inline; filename="a b.pdf"',
    'Attachment; FileName="mixed case.pdf"',
    'attachment; filename="  padded.pdf  "',
    'attachment; filename=""',
    'attachment; filename="x.pdf"; size=12345;'
    ' creation-date="Mon, 01 Jan 2024 10:00:00 GMT"; modification-date="Mon, 01 Jan 2024"',
    'attachment; creation-date="filename=decoy"; filename="real.pdf"',
    'attachment; filename="semi;colon.pdf"',
    'attachment; filename="equals=sign.pdf"',
]
# ... and the forms left to Message.get_filename.
_OTHER_FORMS = [
    'attachment; filename="first.pdf"; filename="second.pdf"',
    "attachment; size=1",
    "attachment",
    'attachment; filename="esc\\"aped.pdf"',
    "attachment; filename=This is a test.txt",
    "attachment; filename*=utf-8''%C3%A9t%C3%A9.pdf",
    'attachment; filename="=?utf-8?q?caf=C3=A9?=.pdf"',
    'attachment; filename="caf\udcc3\udca9.pdf"',
    'attachment; filename="x.pdf" (comment)',
    'attachment;\r\n filename="folded.pdf"',
]


def _part(disposition: str) -> EmailMessage:
    message = EmailMessage(policy=policies.modern(ParseLimits()))
    message["Content-Type"] = "application/pdf"
    message._headers.append(("Content-Disposition", disposition))  # as a parser stores it
    return message


@pytest.mark.parametrize("value", _PLAIN_FORMS)
def test_a_plain_disposition_gives_get_filenames_name(value: str) -> None:
    """Reading a plain Content-Disposition's filename without the header parser gives
    what ``Message.get_filename`` gives through the modern header object."""
    part = _part(value)
    assert parts._plain_disposition_filename(part) == part.get_filename()


@pytest.mark.parametrize("value", _OTHER_FORMS)
def test_other_dispositions_are_left_to_get_filename(value: str) -> None:
    assert parts._plain_disposition_filename(_part(value)) is None
