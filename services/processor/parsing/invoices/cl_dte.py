"""Chilean electronic tax documents (SII DTE schema, http://www.sii.cl/SiiDte).

Accepts a single ``DTE`` or an ``EnvioDTE``/``EnvioBOLETA`` that wraps several; each
document becomes one result.
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree.ElementTree import Element

from ._xml import child, local, text

FORMAT = "cl-dte"
_ROOTS = frozenset({"DTE", "EnvioDTE", "EnvioBOLETA"})
# A DTE holds exactly one of these, depending on the document family.
_DOCUMENTS = frozenset({"Documento", "Exportaciones", "Liquidacion"})


class ChileanDte:
    def matches(self, root: Element) -> bool:
        # Stops at the first document: a single DTE is the root, its document a child.
        return local(root.tag) in _ROOTS and next(self._documents(root), None) is not None

    def format_of(self, root: Element) -> str:
        return FORMAT

    def extract(self, root: Element) -> list[dict[str, str | None]]:
        return [self._fields(doc) for doc in self._documents(root)]

    @staticmethod
    def _documents(root: Element) -> Iterator[Element]:
        return (
            doc
            for dte in root.iter()
            if local(dte.tag) == "DTE"
            for doc in dte
            if local(doc.tag) in _DOCUMENTS
        )

    @staticmethod
    def _fields(doc: Element) -> dict[str, str | None]:
        head = child(doc, "Encabezado")
        totals = child(head, "Totales")
        return {
            "document_type": text(head, "IdDoc", "TipoDTE"),
            "number": text(head, "IdDoc", "Folio"),
            "issue_date": text(head, "IdDoc", "FchEmis"),
            "issuer_tax_id": text(head, "Emisor", "RUTEmisor"),
            "issuer_name": text(head, "Emisor", "RznSoc") or text(head, "Emisor", "RznSocEmisor"),
            "receiver_tax_id": text(head, "Receptor", "RUTRecep"),
            "receiver_name": text(head, "Receptor", "RznSocRecep"),
            "net": text(totals, "MntNeto"),
            "tax": text(totals, "IVA"),
            "total": text(totals, "MntTotal"),
            # Amounts in a DTE are pesos unless an export document names another currency.
            "currency": text(totals, "TpoMoneda") or "CLP",
            "document_id": doc.get("ID"),
        }
