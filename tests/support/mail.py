"""Sample invoice mails (kept in standin/samples.py, shared with the demo)."""

from __future__ import annotations

from standin.samples import dte_xml, fake_pdf, invoice_mail
from standin.testing import StandIn

__all__ = ["append_invoices", "dte_xml", "fake_pdf", "invoice_mail"]


def append_invoices(standin: StandIn, address: str, count: int) -> dict[str, dict[str, str]]:
    """APPEND ``count`` invoice mails to ``address``'s INBOX; {subject: attachment hashes}."""
    expected: dict[str, dict[str, str]] = {}
    for n in range(count):
        raw, hashes = invoice_mail(n, to=address)
        standin.dovecot.append(address, raw)
        expected[f"Factura electrónica N° {1000 + n}"] = hashes
    return expected
