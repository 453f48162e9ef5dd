"""Sample mails with PDF and DTE-style XML attachments, for seeding the stand-in's Dovecot."""

from __future__ import annotations

import hashlib
import os
import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def fake_pdf(size: int = 2000, seed: bytes = b"") -> bytes:
    # Incompressible, like the deflate streams of a real PDF: a repeated pattern would let
    # PostgreSQL's TOAST compression shrink stored mail twentyfold and flatter benchmarks.
    body = random.Random(hashlib.sha256(seed).digest()).randbytes(size)
    return b"%PDF-1.4\n" + body + b"\n%%EOF\n"


def dte_xml(folio: int, total: int = 119000) -> bytes:
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<DTE xmlns="http://www.sii.cl/SiiDte" version="1.0">
 <Documento ID="F{folio}T33">
  <Encabezado>
   <IdDoc><TipoDTE>33</TipoDTE><Folio>{folio}</Folio><FchEmis>2026-11-20</FchEmis></IdDoc>
   <Emisor><RUTEmisor>76086428-5</RUTEmisor><RznSoc>Proveedora Andina SpA</RznSoc></Emisor>
   <Receptor><RUTRecep>96790240-3</RUTRecep>
    <RznSocRecep>Cliente Ejemplo S.A.</RznSocRecep></Receptor>
   <Totales><MntNeto>100000</MntNeto><IVA>19000</IVA><MntTotal>{total}</MntTotal></Totales>
  </Encabezado>
 </Documento>
</DTE>
""".encode("iso-8859-1")


def invoice_mail(n: int, *, to: str, pdf_size: int = 2000) -> tuple[bytes, dict[str, str]]:
    """A mail with a PDF and a DTE XML; returns the bytes and {filename: sha256}."""
    msg = EmailMessage()
    msg["From"] = "Facturación Proveedora <facturas@proveedora.example>"
    msg["To"] = to
    msg["Subject"] = f"Factura electrónica N° {1000 + n}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(idstring=f"inv{n}-{os.getpid()}", domain="proveedora.example")
    msg.set_content(f"Adjuntamos la factura {1000 + n}.\n")
    pdf = fake_pdf(pdf_size, seed=f"{n}".encode())
    xml = dte_xml(1000 + n)
    msg.add_attachment(
        pdf, maintype="application", subtype="pdf", filename=f"factura-{1000 + n}.pdf"
    )
    msg.add_attachment(
        xml, maintype="application", subtype="xml", filename=f"DTE_33_{1000 + n}.xml"
    )
    hashes = {
        f"factura-{1000 + n}.pdf": hashlib.sha256(pdf).hexdigest(),
        f"DTE_33_{1000 + n}.xml": hashlib.sha256(xml).hexdigest(),
    }
    return msg.as_bytes(), hashes
