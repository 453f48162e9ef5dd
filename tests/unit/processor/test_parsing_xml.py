"""XML attachments are read by the standard library's C parser when they cannot hold a DTD,
and by defusedxml otherwise (services/processor/parsing/invoices/_xml.py): the same trees
and the same errors as defusedxml alone, and no DTD ever gets past the choice."""

from __future__ import annotations

import random
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
import pytest
from defusedxml import DefusedXmlException

from services.processor.parsing import parse_message
from services.processor.parsing.invoices import recognise
from services.processor.parsing.invoices._xml import NotXmlError, load
from tests.support.mail import invoice_mail
from tests.unit.processor.parsing_samples import INVOICES, with_attachment

_ENTITY_TEXT = "EXPANDED-ENTITY"


def _tree(elem: Element) -> tuple[object, ...]:
    return (elem.tag, dict(elem.attrib), elem.text, elem.tail, [_tree(c) for c in elem])


def _defused(data: bytes) -> tuple[object, ...] | str:
    """What defusedxml alone makes of ``data``: the tree, or the error load reports."""
    try:
        return _tree(SafeET.fromstring(data, forbid_dtd=True))
    except (SafeET.ParseError, DefusedXmlException, ValueError, LookupError) as exc:
        return f"{type(exc).__name__}: {exc}"[:200]


def _loaded(data: bytes) -> tuple[object, ...] | str:
    try:
        return _tree(load(data))
    except NotXmlError as exc:
        return str(exc)


def _samples() -> list[bytes]:
    mail, _ = invoice_mail(1, to="a@example.com")  # the bench's invoice
    [bench_xml] = [
        a.content for a in parse_message(mail).attachments if a.filename.endswith(".xml")
    ]
    return [p.read_bytes() for p in sorted(INVOICES.glob("*.xml"))] + [bench_xml]


def _mutations(data: bytes, rng: random.Random) -> list[bytes]:
    out = [data[: rng.randrange(len(data))] for _ in range(20)]
    for _ in range(40):
        i = rng.randrange(len(data))
        out.append(data[:i] + bytes([rng.choice(b"<>&;/\"'=?! ax\xff\xc3")]) + data[i + 1 :])
    return out


def test_invoices_and_their_damaged_copies_load_as_defusedxml_alone_loads_them() -> None:
    rng = random.Random(19)
    checked = 0
    for sample in _samples():
        for data in [sample, *_mutations(sample, rng)]:
            assert _loaded(data) == _defused(data), data[:120]
            checked += 1
    assert checked == 6 * 61


_DTD = (
    '<?xml version="1.0" encoding="{enc}"?>'
    '<!DOCTYPE r [<!ENTITY e "' + _ENTITY_TEXT + '">]><r>&e;</r>'
)


@pytest.mark.parametrize(
    "data",
    [
        _DTD.format(enc="UTF-8").encode(),
        b"\xef\xbb\xbf" + _DTD.format(enc="UTF-8").encode(),
        _DTD.format(enc="UTF-16").encode("utf-16"),  # with its byte-order mark
        _DTD.format(enc="UTF-16").encode("utf-16-le"),
        _DTD.format(enc="UTF-16").encode("utf-16-be"),
        _DTD.format(enc="ISO-8859-1").encode("latin-1"),
        # An entity declared in a comment is not one; the document still reaches defusedxml.
        b"<!-- <!DOCTYPE r> --><r>text</r>",
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-bom", "utf-16-le", "utf-16-be", "latin-1", "comment"],
)
def test_a_dtd_in_any_encoding_expat_reads_is_refused_by_defusedxml(data: bytes) -> None:
    """Each of these holds ``<!DOCTYPE`` as expat will read it, so the fast parser must not
    take it: were it taken, the entity would come back expanded."""
    loaded = _loaded(data)
    assert _ENTITY_TEXT not in repr(loaded)
    assert loaded == _defused(data)
    if b"<!--" not in data:
        assert isinstance(loaded, str)
        assert "DTDForbidden" in loaded


@pytest.mark.parametrize(
    ("encoding", "codec"),
    [("cp037", "cp037"), ("cp500", "cp500"), ("UTF-7", "utf-7"), ("UTF-32", "utf-32")],
)
def test_an_encoding_that_would_hide_a_dtd_from_the_byte_check_is_refused(
    encoding: str, codec: str
) -> None:
    """The byte check looks for ASCII ``<!DOCTYPE``: a declared encoding where those
    characters are other bytes would slip past it, so expat must refuse to read one."""
    head = f'<?xml version="1.0" encoding="{encoding}"?>'.encode()
    body = ('<!DOCTYPE r [<!ENTITY e "' + _ENTITY_TEXT + '">]><r>&e;</r>').encode(codec)
    loaded = _loaded(head + body)
    assert isinstance(loaded, str), loaded
    assert _ENTITY_TEXT not in loaded


def test_an_invoice_read_by_the_fast_parser_gives_its_fields() -> None:
    """The extractors work on the C parser's elements as on defusedxml's."""
    [(fmt, fields)] = recognise((INVOICES / "ubl_invoice_peppol.xml").read_bytes())
    assert fmt == "ubl-invoice"
    assert fields["number"]


def test_an_xml_attachment_in_an_unknown_encoding_is_a_defect_not_a_failed_mail() -> None:
    """Python cannot decode the declared encoding: the attachment is kept and noted, and
    the mail is still read (it was a failed document, "unexpected LookupError")."""
    mail = parse_message(
        with_attachment(
            "x.xml", b'<?xml version="1.0" encoding="no-such"?><r/>', "application", "xml"
        ).as_bytes()
    )
    assert [a.filename for a in mail.attachments] == ["x.xml"]
    assert any(
        "XML not readable (LookupError: unknown encoding: no-such)" in d for d in mail.defects
    )
