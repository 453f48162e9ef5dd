"""OASIS UBL 2.1 Invoice and CreditNote (Peppol BIS, EN 16931 and national CIUS)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from ._xml import child, local, namespace, text

_NAMESPACES = {
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2": "ubl-invoice",
    "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2": "ubl-creditnote",
}


class Ubl:
    def matches(self, root: Element) -> bool:
        return namespace(root.tag) in _NAMESPACES and local(root.tag) in {"Invoice", "CreditNote"}

    def format_of(self, root: Element) -> str:
        return _NAMESPACES[namespace(root.tag)]

    def extract(self, root: Element) -> list[dict[str, str | None]]:
        supplier = child(root, "AccountingSupplierParty", "Party")
        customer = child(root, "AccountingCustomerParty", "Party")
        payable = child(root, "LegalMonetaryTotal", "PayableAmount")
        kind = "InvoiceTypeCode" if local(root.tag) == "Invoice" else "CreditNoteTypeCode"
        return [
            {
                "document_type": text(root, kind),
                "number": text(root, "ID"),
                "issue_date": text(root, "IssueDate"),
                "due_date": text(root, "DueDate"),
                "issuer_tax_id": _tax_id(supplier),
                "issuer_name": _name(supplier),
                "receiver_tax_id": _tax_id(customer),
                "receiver_name": _name(customer),
                "total": text(payable),
                "currency": (payable.get("currencyID") if payable is not None else None)
                or text(root, "DocumentCurrencyCode"),
                "customization_id": text(root, "CustomizationID"),
            }
        ]


def _tax_id(party: Element | None) -> str | None:
    return (
        text(party, "PartyTaxScheme", "CompanyID")
        or text(party, "PartyLegalEntity", "CompanyID")
        or text(party, "PartyIdentification", "ID")
    )


def _name(party: Element | None) -> str | None:
    return text(party, "PartyLegalEntity", "RegistrationName") or text(party, "PartyName", "Name")
