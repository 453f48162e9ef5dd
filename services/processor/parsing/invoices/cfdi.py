"""Mexican CFDI (SAT Anexo 20), version 4.0 and the still-common 3.3."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from ._xml import child, local, namespace

_NAMESPACES = {
    "http://www.sat.gob.mx/cfd/4": "mx-cfdi-4.0",
    "http://www.sat.gob.mx/cfd/3": "mx-cfdi-3.3",
}
_STAMP = "{http://www.sat.gob.mx/TimbreFiscalDigital}TimbreFiscalDigital"


class Cfdi:
    def matches(self, root: Element) -> bool:
        return local(root.tag) == "Comprobante" and namespace(root.tag) in _NAMESPACES

    def format_of(self, root: Element) -> str:
        return _NAMESPACES[namespace(root.tag)]

    def extract(self, root: Element) -> list[dict[str, str | None]]:
        issuer = child(root, "Emisor")
        receiver = child(root, "Receptor")
        stamp = next(root.iter(_STAMP), None)
        return [
            {
                "document_type": root.get("TipoDeComprobante"),
                "number": root.get("Folio"),
                "series": root.get("Serie"),
                "issue_date": root.get("Fecha"),
                "issuer_tax_id": _attr(issuer, "Rfc"),
                "issuer_name": _attr(issuer, "Nombre"),
                "receiver_tax_id": _attr(receiver, "Rfc"),
                "receiver_name": _attr(receiver, "Nombre"),
                "subtotal": root.get("SubTotal"),
                "total": root.get("Total"),
                "currency": root.get("Moneda"),
                "uuid": _attr(stamp, "UUID"),
            }
        ]


def _attr(elem: Element | None, name: str) -> str | None:
    return elem.get(name) if elem is not None else None
