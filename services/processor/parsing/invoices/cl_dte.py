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
        fields = _header_fields(child(doc, "Encabezado"))

        def field(group: str, name: str) -> str | None:
            return text(fields.get((group, name)))

        return {
            "document_type": field("IdDoc", "TipoDTE"),
            "number": field("IdDoc", "Folio"),
            "issue_date": field("IdDoc", "FchEmis"),
            "issuer_tax_id": field("Emisor", "RUTEmisor"),
            "issuer_name": field("Emisor", "RznSoc") or field("Emisor", "RznSocEmisor"),
            "receiver_tax_id": field("Receptor", "RUTRecep"),
            "receiver_name": field("Receptor", "RznSocRecep"),
            "net": field("Totales", "MntNeto"),
            "tax": field("Totales", "IVA"),
            "total": field("Totales", "MntTotal"),
            # Amounts in a DTE are pesos unless an export document names another currency.
            "currency": field("Totales", "TpoMoneda") or "CLP",
            "document_id": doc.get("ID"),
        }


def _header_fields(head: Element | None) -> dict[tuple[str, str], Element]:
    """The header's fields by (group, field) local names, read in one pass: looking each
    of the twelve up from the header took half as much CPU again as parsing the XML.

    The first group of a name and its first field of a name count, as a lookup by path
    would find them.
    """
    fields: dict[tuple[str, str], Element] = {}
    if head is None:
        return fields
    groups: set[str] = set()
    for group in head:
        group_name = local(group.tag)
        if group_name in groups:
            continue
        groups.add(group_name)
        for field in group:
            fields.setdefault((group_name, local(field.tag)), field)
    return fields
