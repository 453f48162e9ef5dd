"""Headers, bodies and the non-MIME edge of parse_message."""

from __future__ import annotations

import email.policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesHeaderParser

import pytest

from common.errors import UnparseableMail
from services.processor.parsing import parse_headers_only, parse_message
from services.processor.parsing.headers import _plain_addresses, raw_value
from tests.support.corpus import CORPORA, corpus_files
from tests.unit.processor.parsing_samples import simple


def test_plain_mail_headers_are_decoded() -> None:
    """The envelope fields the inbox shows come out decoded and typed."""
    mail = parse_message(simple("Adjunto factura").as_bytes())
    assert mail.message_id == "<abc@proveedor.cl>"
    assert mail.subject == "Factura"
    assert mail.from_ == "Proveedor <facturas@proveedor.cl>"
    assert mail.from_address == "facturas@proveedor.cl"
    assert mail.to == ["bandeja@empresa.cl"]
    assert mail.date is not None
    assert mail.date.utcoffset() is not None
    assert mail.text_body.strip() == "Adjunto factura"
    assert mail.html_body is None


def test_rfc2047_subject_and_from_are_decoded() -> None:
    """Encoded words in Subject and From (RFC 2047) become readable text."""
    raw = (
        b"From: =?ISO-8859-1?Q?Jos=E9_P=E9rez?= <JOSE@Example.CL>\r\n"
        b"Subject: =?UTF-8?B?RmFjdHVyYSBOwrAgMTIz?=\r\n =?utf-8?q?_de_marzo?=\r\n"
        b"\r\nhola\r\n"
    )
    mail = parse_message(raw)
    assert mail.subject == "Factura N° 123 de marzo"
    assert mail.from_ == "José Pérez <JOSE@Example.CL>"
    assert mail.from_address == "jose@example.cl"


def test_raw_8bit_subject_falls_back_to_utf8_then_cp1252() -> None:
    """Unencoded 8-bit headers are read as UTF-8, else cp1252, instead of U+FFFD."""
    utf8 = parse_message("Subject: Cotización\r\n\r\nx\r\n".encode())
    latin = parse_message("Subject: Cotización\r\n\r\nx\r\n".encode("cp1252"))
    assert utf8.subject == "Cotización"
    assert latin.subject == "Cotización"
    assert any("cp1252" in d for d in latin.defects)


def test_wrong_declared_charset_falls_back_with_defect() -> None:
    """A body that is not valid in its declared charset is decoded by fallback, noted."""
    raw = b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + "Año fiscal".encode(
        "cp1252"
    )
    mail = parse_message(raw)
    assert mail.text_body == "Año fiscal"
    assert any("not valid utf-8" in d for d in mail.defects)


def test_unknown_charset_falls_back_with_defect() -> None:
    """An unknown charset label does not lose the body."""
    raw = b"Subject: x\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nqapla'\r\n"
    mail = parse_message(raw)
    assert mail.text_body.strip() == "qapla'"
    assert any("unknown charset" in d for d in mail.defects)


def test_missing_content_type_is_plain_text() -> None:
    """RFC 2045 5.2: no Content-Type means text/plain; us-ascii."""
    mail = parse_message(b"From: a@b.cl\r\nSubject: hi\r\n\r\nsolo texto\r\n")
    assert mail.text_body.strip() == "solo texto"
    assert mail.attachments == []


def test_html_only_mail_keeps_html_and_renders_text() -> None:
    """HTML-only mail keeps the HTML and gets a text rendering without markup or scripts."""
    msg = EmailMessage()
    msg["Subject"] = "html"
    msg.set_content(
        "<html><head><style>p{}</style></head><body><p>Estimado&nbsp;cliente,</p>"
        "<script>alert(1)</script><ul><li>uno</li><li>dos</li></ul></body></html>",
        subtype="html",
    )
    mail = parse_message(msg.as_bytes())
    assert mail.html_body is not None
    assert "<p>" in mail.html_body
    assert "Estimado\xa0cliente," in mail.text_body
    assert "- uno" in mail.text_body
    assert "alert" not in mail.text_body
    assert "p{}" not in mail.text_body


def test_alternative_prefers_plain_text() -> None:
    """In multipart/alternative, text_body is the sender's plain version, html kept apart."""
    msg = simple("versión texto")
    msg.add_alternative("<p>versión html</p>", subtype="html")
    mail = parse_message(msg.as_bytes())
    assert mail.text_body.strip() == "versión texto"
    assert mail.html_body is not None
    assert "versión html" in mail.html_body


def test_broken_boundary_still_yields_text() -> None:
    """A multipart whose boundary never appears keeps its content as text, with a defect."""
    raw = (
        b"Subject: roto\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="nunca"\r\n\r\n'
        b"--otro\r\nContent-Type: text/plain\r\n\r\ncontenido\r\n--otro--\r\n"
    )
    mail = parse_message(raw)
    assert "contenido" in mail.text_body
    assert mail.defects


def test_headers_only_reads_envelope() -> None:
    """parse_headers_only gives the envelope of an oversized mail without bodies."""
    head = simple().as_bytes().split(b"\n\n", 1)[0] + b"\n\n"
    mail = parse_headers_only(head)
    assert mail.subject == "Factura"
    assert mail.from_address == "facturas@proveedor.cl"
    assert mail.text_body == ""
    assert mail.attachments == []


def test_headerless_text_is_kept_as_body() -> None:
    """Text with no headers at all is still a (defective) mail, not a failure."""
    mail = parse_message(b"Este texto no tiene cabeceras\r\nni nada mas.\r\n")
    assert "no tiene cabeceras" in mail.text_body
    assert any("no mail headers" in d for d in mail.defects)


@pytest.mark.parametrize(
    "raw",
    [b"", b"   \r\n\r\n", bytes(range(256)) * 40, b"\xd0\xcf\x11\xe0" + b"\x00" * 4000],
)
def test_nothing_usable_raises_unparseable(raw: bytes) -> None:
    """Empty input and headerless binary end as UnparseableMail, the documented failure."""
    with pytest.raises(UnparseableMail):
        parse_message(raw)


def test_naive_date_becomes_utc() -> None:
    """A -0000 (zone unknown) Date is returned timezone-aware, as UTC."""
    mail = parse_message(b"Date: Fri, 15 Mar 2024 10:00:00 -0000\r\nSubject: x\r\n\r\nx\r\n")
    assert mail.date is not None
    assert mail.date.utcoffset() is not None


def test_unparseable_date_is_none_with_defect() -> None:
    """A garbage Date header yields date None and a defect, not a failure."""
    mail = parse_message(b"Date: el martes\r\nSubject: x\r\n\r\nx\r\n")
    assert mail.date is None
    assert any("Date" in d for d in mail.defects)


def test_unquoted_boundary_with_equals_sign() -> None:
    """JavaMail's unquoted boundary=----=_Part_... still splits the parts (as compat32 does)."""
    raw = (
        b"Subject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed;\r\n boundary=----=_Part_1_2.3\r\n\r\n"
        b"------=_Part_1_2.3\r\nContent-Type: text/plain\r\n\r\ncuerpo\r\n"
        b"------=_Part_1_2.3\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n"
        b"------=_Part_1_2.3--\r\n"
    )
    mail = parse_message(raw)
    assert mail.text_body.strip() == "cuerpo"
    assert [a.filename for a in mail.attachments] == ["a.pdf"]


_PLAIN_ADDRESS_LISTS = [
    "a@b.example",
    " a@b.example ",
    "first.last+tag@sub.x.example",
    "John Smith <js@x.example>",
    "John  Smith <js@x.example>",
    "Name<n@x.example>",
    "<js@x.example>",
    '"Smith, John" <js@x.example>',
    '"a  b" <x@y.example>',
    '"" <e@x.example>',
    "O'Neil <o@x.example>",
    'a@b.example, "C D" <c@d.example>, E <e@f.example>',
    "a@b.example , c@d.example",
    "a@b.example,",
    '"x <a@b.example>" <c@d.example>',
]
_OTHER_ADDRESS_LISTS = [
    "=?utf-8?q?Facturaci=C3=B3n?= Proveedora <facturas@proveedora.example>",
    "J. Smith <j@x.example>",
    "undisclosed-recipients:;",
    "a@b.example (comment)",
    '"a\\"b" <x@y.example>',
    '"local part"@x.example',
    "a@[192.0.2.1]",
    "a@b.example <c@d.example>",
    "Tab\tName <t@x.example>",
    "a@b.example,, c@d.example",
]


def _modern_pairs(value: str) -> list[tuple[str, str]]:
    header = HeaderRegistry()("to", value)
    return [(a.display_name, a.addr_spec) for a in header.addresses]


@pytest.mark.parametrize("value", _PLAIN_ADDRESS_LISTS)
def test_a_plain_address_list_reads_as_the_modern_parser_reads_it(value: str) -> None:
    assert _plain_addresses(value) == _modern_pairs(value)


@pytest.mark.parametrize("value", _OTHER_ADDRESS_LISTS)
def test_other_address_lists_are_left_to_the_modern_parser(value: str) -> None:
    assert _plain_addresses(value) is None


@pytest.mark.parametrize("corpus", CORPORA)
def test_every_plain_corpus_address_list_reads_as_the_modern_parser_reads_it(
    corpus: str,
) -> None:
    """From, To, Cc and Reply-To of every mail in the corpus: where the pattern reads a
    list, it gives the modern parser's pairs."""
    read = 0
    for path in corpus_files(corpus):
        head = path.read_bytes().split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
        message = BytesHeaderParser(policy=email.policy.default).parsebytes(head)
        for name in ("from", "to", "cc", "reply-to"):
            value = raw_value(message, name)
            if value is None or (plain := _plain_addresses(value)) is None:
                continue
            assert plain == _modern_pairs(value), f"{path.name} {name}: {value!r}"
            read += 1
    assert read > 0
