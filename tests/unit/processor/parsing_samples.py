"""Builders for the sample mails the parsing tests feed to ``parse_message``."""

from __future__ import annotations

import datetime
import struct
from email.message import EmailMessage
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mail"
INVOICES = FIXTURES / "invoices"


def simple(body: str = "Hola", subject: str = "Factura") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Proveedor <facturas@proveedor.cl>"
    msg["To"] = "bandeja@empresa.cl"
    msg["Subject"] = subject
    msg["Date"] = "Fri, 15 Mar 2024 10:00:00 -0300"
    msg["Message-ID"] = "<abc@proveedor.cl>"
    msg.set_content(body)
    return msg


def with_attachment(name: str, content: bytes, maintype: str, subtype: str) -> EmailMessage:
    msg = simple()
    msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return msg


def _tnef_attr(level: int, attr_id: int, attr_type: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    head = struct.pack("<BHHI", level, attr_id, attr_type, len(data))
    return head + data + struct.pack("<H", checksum)


def tnef_stream(files: dict[str, bytes]) -> bytes:
    """A minimal winmail.dat (MS-OXTNEF) carrying ``files`` as attachments."""
    out = struct.pack("<IH", 0x223E9F78, 0x0001)
    out += _tnef_attr(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))
    for name, content in files.items():
        out += _tnef_attr(2, 0x9002, 0x0006, b"\x01\x00" + b"\x00" * 12)
        out += _tnef_attr(2, 0x8010, 0x0001, name.encode("cp1252") + b"\x00")
        out += _tnef_attr(2, 0x800F, 0x0006, content)
    return out


def signed_data(content: bytes) -> bytes:
    """A CMS signed-data blob (opaque, not detached) as S/MIME application/pkcs7-mime."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Firmante")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(cert, key, hashes.SHA256())
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
