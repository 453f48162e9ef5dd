"""Electronic invoices recognised among attachments, one test per format."""

from __future__ import annotations

import pytest

from services.processor.parsing import parse_message
from services.processor.parsing.invoices import recognise
from tests.unit.processor.parsing_samples import INVOICES, simple, with_attachment


def _mail_with(name: str, content: bytes, subtype: str = "xml") -> bytes:
    return with_attachment(name, content, "application", subtype).as_bytes()


def test_chilean_dte_in_latin1() -> None:
    """A single SII DTE in ISO-8859-1 yields its folio, RUTs, name and total."""
    content = (INVOICES / "cl_dte_factura_33_latin1.xml").read_bytes()
    [inv] = parse_message(_mail_with("DTE_33_1234.xml", content)).invoices
    assert inv.format == "cl-dte"
    assert inv.filename == "DTE_33_1234.xml"
    assert inv.fields["document_type"] == "33"
    assert inv.fields["number"] == "1234"
    assert inv.fields["issue_date"] == "2024-03-15"
    assert inv.fields["issuer_tax_id"] == "76123456-7"
    assert inv.fields["issuer_name"] == "Comercializadora Ñandú y Compañía Limitada"
    assert inv.fields["receiver_tax_id"] == "96543210-K"
    assert inv.fields["total"] == "119000"
    assert inv.fields["currency"] == "CLP"


def test_envio_dte_yields_each_document() -> None:
    """An EnvioDTE envelope carrying two DTE gives two invoices from one file."""
    content = (INVOICES / "cl_envio_dte_two_documents.xml").read_bytes()
    invoices = parse_message(_mail_with("envio.xml", content)).invoices
    assert [i.fields["number"] for i in invoices] == ["501", "502"]
    assert [i.fields["total"] for i in invoices] == ["45000", "12500"]
    assert {i.fields["document_type"] for i in invoices} == {"34"}


def test_an_sii_envelope_without_a_document_is_not_an_invoice() -> None:
    """An EnvioDTE whose DTE holds no Documento (only its signature) matches no format."""
    content = (
        b'<EnvioDTE xmlns="http://www.sii.cl/SiiDte"><SetDTE><Caratula/>'
        b"<DTE><Signature/></DTE></SetDTE></EnvioDTE>"
    )
    assert recognise(content) == []


def test_a_dte_header_reads_the_first_group_and_field_of_each_name() -> None:
    """A header that repeats a group or a field: its first group of a name is the one read,
    and that group's first field of a name, even where a later group holds the field."""
    content = (
        b'<DTE xmlns="http://www.sii.cl/SiiDte"><Documento ID="D1"><Encabezado>'
        b"<IdDoc><TipoDTE>33</TipoDTE><Folio> 7 </Folio><Folio>8</Folio></IdDoc>"
        b"<Emisor><RUTEmisor>1-9</RUTEmisor></Emisor>"
        b"<Emisor><RznSoc>Second issuer</RznSoc></Emisor>"
        b"<Totales><MntTotal/></Totales><Totales><MntTotal>99</MntTotal></Totales>"
        b"</Encabezado></Documento></DTE>"
    )
    [(fmt, fields)] = recognise(content)
    assert fmt == "cl-dte"
    assert fields["number"] == "7"
    assert fields["issuer_tax_id"] == "1-9"
    assert fields["issuer_name"] is None
    assert fields["total"] is None
    assert fields["currency"] == "CLP"
    assert fields["receiver_name"] is None


def test_ubl_invoice() -> None:
    """UBL 2.1 Invoice: ID, dates, supplier VAT and legal name, payable amount, currency."""
    content = (INVOICES / "ubl_invoice_peppol.xml").read_bytes()
    [inv] = parse_message(_mail_with("inv.xml", content)).invoices
    assert inv.format == "ubl-invoice"
    assert inv.fields["number"] == "INV-2024-0042"
    assert inv.fields["document_type"] == "380"
    assert inv.fields["issue_date"] == "2024-05-02"
    assert inv.fields["issuer_tax_id"] == "DE123456789"
    assert inv.fields["issuer_name"] == "Lieferant Trading GmbH"
    assert inv.fields["receiver_tax_id"] == "ESB12345674"
    assert (inv.fields["total"], inv.fields["currency"]) == ("1190.00", "EUR")


def test_ubl_credit_note() -> None:
    """UBL 2.1 CreditNote is recognised as its own format with its type code."""
    content = (INVOICES / "ubl_creditnote.xml").read_bytes()
    [inv] = parse_message(_mail_with("cn.xml", content, "octet-stream")).invoices
    assert inv.format == "ubl-creditnote"
    assert inv.fields["document_type"] == "381"
    assert inv.fields["receiver_tax_id"] == "5560001111"
    assert (inv.fields["total"], inv.fields["currency"]) == ("250.00", "SEK")


def test_mexican_cfdi_40() -> None:
    """CFDI 4.0: Serie/Folio, Fecha, RFCs, Total, Moneda and the SAT stamp UUID."""
    content = (INVOICES / "mx_cfdi_40.xml").read_bytes()
    [inv] = parse_message(_mail_with("cfdi.xml", content)).invoices
    assert inv.format == "mx-cfdi-4.0"
    assert (inv.fields["series"], inv.fields["number"]) == ("A", "1001")
    assert inv.fields["issue_date"] == "2024-02-10T13:45:00"
    assert inv.fields["issuer_tax_id"] == "EKU9003173C9"
    assert inv.fields["issuer_name"] == "ESCUELA KEMPER URGATE"
    assert inv.fields["receiver_tax_id"] == "XAXX010101000"
    assert (inv.fields["total"], inv.fields["currency"]) == ("1160.00", "MXN")
    assert inv.fields["uuid"] == "6F1B3C2A-9D4E-4B7A-8C21-0E5F6A7B8C9D"
    assert inv.fields["document_type"] == "I"


def test_invoice_inside_forwarded_mail() -> None:
    """An invoice XML attached to a forwarded message is recognised too."""
    inner = with_attachment("cfdi.xml", (INVOICES / "mx_cfdi_40.xml").read_bytes(), "text", "xml")
    outer = simple("reenvío")
    outer.add_attachment(inner)
    [inv] = parse_message(outer.as_bytes()).invoices
    assert inv.format == "mx-cfdi-4.0"


def test_unknown_xml_is_not_an_invoice() -> None:
    """Well-formed XML of another kind is an attachment, not an invoice, and no defect."""
    mail = parse_message(_mail_with("otro.xml", b"<?xml version='1.0'?><pedido/>"))
    assert mail.invoices == []
    assert len(mail.attachments) == 1


@pytest.mark.parametrize(
    "payload",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<x>&b;</x>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
        b"<?xml version='1.0'?><DTE><Documento>",
    ],
)
def test_hostile_or_broken_xml_is_refused_with_defect(payload: bytes) -> None:
    """Entity expansion, external entities and truncated XML yield no invoice, a defect."""
    mail = parse_message(_mail_with("x.xml", payload))
    assert mail.invoices == []
    assert any("XML not readable" in d for d in mail.defects)


def test_registry_is_usable_alone() -> None:
    """recognise() is the one seam new formats plug into; it works on bare bytes."""
    [(fmt, fields)] = recognise((INVOICES / "ubl_invoice_peppol.xml").read_bytes())
    assert fmt == "ubl-invoice"
    assert fields["number"] == "INV-2024-0042"
