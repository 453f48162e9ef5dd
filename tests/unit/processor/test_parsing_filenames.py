"""Storage-safe names from hostile attachment names."""

from __future__ import annotations

import pytest

from services.processor.parsing.filenames import MAX_NAME_BYTES, NameRegistry, sanitise


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
