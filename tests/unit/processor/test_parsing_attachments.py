"""Attachments: names, inline images, forwarded mail, calendar invites, TNEF, S/MIME."""

from __future__ import annotations

import hashlib
from email.message import EmailMessage

from services.processor.parsing import parse_message
from tests.unit.processor.parsing_samples import signed_data, simple, tnef_stream, with_attachment


def test_attachment_fields() -> None:
    """A plain attachment keeps its bytes, type, name and a sha256 of the content."""
    msg = with_attachment("factura.pdf", b"%PDF-1.4 x", "application", "pdf")
    mail = parse_message(msg.as_bytes())
    [att] = mail.attachments
    assert att.filename == "factura.pdf"
    assert att.original_filename == "factura.pdf"
    assert att.content_type == "application/pdf"
    assert att.content == b"%PDF-1.4 x"
    assert att.size == 10
    assert att.sha256 == hashlib.sha256(b"%PDF-1.4 x").hexdigest()
    assert att.disposition == "attachment"
    assert att.source == "mail"


def test_rfc2231_filename_is_decoded() -> None:
    """RFC 2231 encoded (and continued) filenames come back as the sender's text."""
    raw = (
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: application/pdf\r\n"
        b"Content-Disposition: attachment;\r\n filename*0*=utf-8''Cotizaci%C3%B3n%20;\r\n"
        b" filename*1*=N%C2%BA%205.pdf\r\n\r\n%PDF\r\n--b--\r\n"
    )
    [att] = parse_message(raw).attachments
    assert att.original_filename == "Cotización Nº 5.pdf"
    assert att.filename == "Cotización Nº 5.pdf"


def test_rfc2047_filename_is_decoded() -> None:
    """Encoded words in a quoted filename (as Outlook and Gmail send) are decoded."""
    raw = (
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b'Content-Type: application/pdf; name="=?ISO-8859-1?Q?Gu=EDa.pdf?="\r\n'
        b'Content-Disposition: attachment; filename="=?ISO-8859-1?Q?Gu=EDa.pdf?="\r\n'
        b"\r\n%PDF\r\n--b--\r\n"
    )
    [att] = parse_message(raw).attachments
    assert att.original_filename == "Guía.pdf"


def test_missing_names_are_derived_and_duplicates_suffixed() -> None:
    """Nameless parts get attachment-N.ext; equal names in one mail get (1), (2)."""
    msg = simple()
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf")
    for _ in range(3):
        msg.add_attachment(b"a", maintype="text", subtype="csv", filename="datos.csv")
    names = [a.filename for a in parse_message(msg.as_bytes()).attachments]
    assert names == ["attachment-1.pdf", "datos.csv", "datos (1).csv", "datos (2).csv"]


def _related_mail(referenced: bool) -> bytes:
    msg = simple()
    ref = "cid:logo@x" if referenced else "https://example.com/logo.png"
    msg.add_alternative(f'<p>hola <img src="{ref}"></p>', subtype="html")
    html = msg.get_payload()[1]
    html.add_related(b"\x89PNG", maintype="image", subtype="png", cid="<logo@x>")
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="f.pdf")
    return msg.as_bytes()


def test_inline_image_referenced_by_cid_is_inline() -> None:
    """An image whose Content-ID the HTML references is inline; the PDF is an attachment."""
    mail = parse_message(_related_mail(referenced=True))
    kinds = {a.content_type: a.disposition for a in mail.attachments}
    assert kinds == {"image/png": "inline", "application/pdf": "attachment"}
    assert mail.attachments[0].content_id == "logo@x"


def test_unreferenced_image_is_an_attachment() -> None:
    """An image the HTML does not reference is a real attachment despite its Content-ID."""
    mail = parse_message(_related_mail(referenced=False))
    assert {a.disposition for a in mail.attachments} == {"attachment"}


def test_forwarded_mail_attachments_are_found() -> None:
    """Attachments inside message/rfc822 become attachments with source 'forwarded'."""
    inner = with_attachment("orden.pdf", b"%PDF inner", "application", "pdf")
    outer = simple("ver reenviado")
    outer.add_attachment(inner)
    mail = parse_message(outer.as_bytes())
    [att] = mail.attachments
    assert (att.filename, att.source, att.content) == ("orden.pdf", "forwarded", b"%PDF inner")
    assert "ver reenviado" in mail.text_body
    assert "Forwarded message" in mail.text_body
    assert "Subject: Factura" in mail.text_body


def test_calendar_invite_is_kept_as_ics_file() -> None:
    """text/calendar is never taken as the body: it is kept as invite.ics."""
    msg = simple("Reunión")
    msg.add_alternative("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", subtype="calendar")
    [att] = parse_message(msg.as_bytes()).attachments
    assert att.filename == "invite.ics"
    assert att.content_type == "text/calendar"
    assert att.content.startswith(b"BEGIN:VCALENDAR")


def test_winmail_dat_is_unpacked() -> None:
    """Files inside an Outlook winmail.dat replace it, with source 'tnef'."""
    stream = tnef_stream({"pedido.pdf": b"%PDF tnef", "notas.txt": b"hola"})
    msg = with_attachment("winmail.dat", stream, "application", "ms-tnef")
    mail = parse_message(msg.as_bytes())
    got = [(a.filename, a.content, a.source, a.content_type) for a in mail.attachments]
    assert got == [
        ("pedido.pdf", b"%PDF tnef", "tnef", "application/pdf"),
        ("notas.txt", b"hola", "tnef", "text/plain"),
    ]


def test_corrupt_winmail_dat_is_kept_with_defect() -> None:
    """A winmail.dat that cannot be unpacked is kept as is and the failure noted."""
    msg = with_attachment("winmail.dat", b"garbage", "application", "ms-tnef")
    mail = parse_message(msg.as_bytes())
    [att] = mail.attachments
    assert att.filename == "winmail.dat"
    assert any("winmail.dat" in d for d in mail.defects)


def test_multipart_signed_yields_signed_content_without_signature() -> None:
    """multipart/signed: the signed part is parsed; the signature blob is not a document."""
    inner = with_attachment("f.pdf", b"%PDF", "application", "pdf")
    del inner["From"], inner["To"], inner["Subject"], inner["Date"], inner["Message-ID"]
    outer = EmailMessage()
    outer["Subject"] = "firmado"
    outer.make_mixed()
    outer.set_type("multipart/signed")
    outer.set_param("protocol", "application/pkcs7-signature")
    outer.attach(inner)
    sig = EmailMessage()
    sig.set_content(b"\x30\x00", maintype="application", subtype="pkcs7-signature")
    outer.attach(sig)
    mail = parse_message(outer.as_bytes())
    assert [a.filename for a in mail.attachments] == ["f.pdf"]
    assert mail.text_body.strip() == "Hola"


def test_opaque_smime_signed_data_is_unpacked() -> None:
    """application/pkcs7-mime signed-data: the encapsulated MIME entity is parsed."""
    entity = (
        b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n"
        b"Content-Type: text/plain\r\n\r\ncuerpo firmado\r\n--z\r\n"
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=s.pdf\r\n"
        b"\r\n%PDF signed\r\n--z--\r\n"
    )
    msg = simple()
    msg.set_content(
        signed_data(entity),
        maintype="application",
        subtype="pkcs7-mime",
        params={"smime-type": "signed-data"},
        filename="smime.p7m",
    )
    mail = parse_message(msg.as_bytes())
    assert "cuerpo firmado" in mail.text_body
    [att] = mail.attachments
    assert (att.filename, att.source) == ("s.pdf", "smime")
    assert att.content.rstrip() == b"%PDF signed"


def test_unreadable_smime_is_kept_with_defect() -> None:
    """A pkcs7-mime blob that is not signed-data is kept as an attachment, noted."""
    msg = simple()
    msg.set_content(
        b"\x30\x03\x06\x01\x00", maintype="application", subtype="pkcs7-mime", filename="smime.p7m"
    )
    mail = parse_message(msg.as_bytes())
    assert [a.filename for a in mail.attachments] == ["smime.p7m"]
    assert any("S/MIME" in d for d in mail.defects)
