"""Sample invoice mails (kept in standin/samples.py, shared with the demo)."""

from standin.samples import dte_xml, fake_pdf, invoice_mail

__all__ = ["dte_xml", "fake_pdf", "invoice_mail"]
