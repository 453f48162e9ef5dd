"""Mail rules end to end (issue 20): a mailbox with rules receives a mix of mail through
Dovecot; skipped mail is decided on its headers without its body ever crossing the wire,
or after parsing when an attachment rule must decide; the documents and events say which
rule let them through; a rule change applies on the next run, without a restart."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid

import requests

from standin.testing import StandIn
from tests.support.events import EventConsumer
from tests.support.flows import connect_new_mailbox
from tests.support.mail import invoice_mail
from tests.support.services import ADMIN_TOKEN, Services
from tests.support.waiting import metric_value, query, wait_until

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BIG_BODY = 1_500_000  # each mail skipped on headers carries this much body
RULES = [  # the mailbox's own, tried before the tenant's
    {"name": "newsletters", "action": "skip", "conditions": {"subject": "*newsletter*"}},
    {
        "name": "ads stay unread",
        "action": "skip",
        "conditions": {"sender": "publicidad.example"},
        "apply_post_action": False,
    },
    {
        "name": "pdf invoices",
        "action": "process",
        "conditions": {"attachment_type": "application/pdf", "attachment_name": "factura-*"},
        "document_kind": "invoice",
        "tags": ["proveedores"],
    },
    {"name": "bare mail", "action": "skip", "conditions": {"has_attachments": False}},
]
TENANT_RULES = [
    {
        "name": "images",
        "action": "process",
        "conditions": {"attachment_type": "image/*"},
        "document_kind": "image",
    },
]


def _mail(sender: str, to: str, subject: str, body: str, attachment: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="rules.example")
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="image", subtype="png", filename="logo.png")
    return msg.as_bytes()


def _put_rules(services: Services, mailbox_id: int, rules: list[dict]) -> requests.Response:
    return requests.put(
        f"{services.auth_url}/api/mailboxes/{mailbox_id}/rules",
        json={"rules": rules},
        headers=ADMIN,
        timeout=10,
    )


def _bytes_sent_by_dovecot(standin: StandIn, address: str) -> int:
    """Dovecot's own count of what it sent in every IMAP session of ``address`` (the
    ``out=`` of its logout lines)."""
    log = standin.dovecot.log_path.read_text(errors="replace")
    pattern = re.compile(rf"imap\({re.escape(address)}\).*? out=(\d+)")
    return sum(int(m.group(1)) for m in pattern.finditer(log))


def test_rules_skip_on_headers_without_the_body_and_route_the_rest(
    standin: StandIn,
    tenant: dict,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    services = start_services(idle_sessions="0")
    address = connect_new_mailbox(standin, services.auth_url, tenant, "rules")
    listing = services.admin_get("/api/mailboxes").json()
    mailbox_id = int(next(m["id"] for m in listing if m["address"] == address))
    dsn = services.env["BANDEJA_DATABASE_URL"]

    refused = _put_rules(services, mailbox_id, [{"name": "x", "action": "delete"}])
    assert refused.status_code == 422
    assert refused.json()["details"][0]["field"].startswith("rules.0.action")
    stored = _put_rules(services, mailbox_id, RULES)
    assert stored.status_code == 200, stored.text
    tenant_id = stored.json()["tenant_id"]
    tenant_wide = requests.put(
        f"{services.auth_url}/api/tenants/{tenant_id}/rules",
        json={"rules": TENANT_RULES},
        headers=ADMIN,
        timeout=10,
    )
    assert tenant_wide.status_code == 200, tenant_wide.text
    applied = services.admin_get(f"/api/mailboxes/{mailbox_id}/rules").json()
    assert [r["name"] for r in applied["rules"]] == [r["name"] for r in RULES]
    assert [r["name"] for r in applied["tenant_rules"]] == ["images"]

    padding = "x" * 76 + "\n"
    big = padding * (BIG_BODY // len(padding))
    mails = {
        "newsletter": _mail("boletin@noticias.example", address, "Newsletter de noviembre", big),
        "ad": _mail("ofertas@publicidad.example", address, "Oferta", big),
        "invoice": invoice_mail(1, to=address)[0],
        "bare": _mail("ana@cliente.example", address, "Hola", "Sin adjuntos."),
        "logo": _mail("ana@cliente.example", address, "Logo", "Va el logo.", b"\x89PNG" * 100),
    }
    uids = {name: standin.dovecot.append(address, raw) for name, raw in mails.items()}

    wait_until(
        lambda: query(dsn, "SELECT count(*) AS n FROM skipped_mails")[0]["n"] == 3,
        40,
        what="3 mails skipped",
    )
    events = erp_consumer.wait_for("bandeja.document.processed", 2, 40)
    by_subject = {e["data"]["subject"]: e["data"]["rule"] for e in events}
    assert by_subject == {
        "Factura electrónica N° 1001": {
            "id": stored.json()["rules"][2]["id"],
            "name": "pdf invoices",
            "document_kind": "invoice",
            "tags": ["proveedores"],
        },
        "Logo": {
            "id": tenant_wide.json()["rules"][0]["id"],
            "name": "images",
            "document_kind": "image",
            "tags": [],
        },
    }
    skipped = services.admin_get(f"/api/mailboxes/{mailbox_id}/skipped").json()["skipped"]
    assert sorted((s["rule_name"], s["stage"], s["post_action"]) for s in skipped) == [
        ("ads stay unread", "headers", None),
        ("bare mail", "attachments", "mark_read"),
        ("newsletters", "headers", "mark_read"),
    ]
    # Nothing of the two big skipped mails was stored; the bare one's bytes are gone.
    assert query(dsn, "SELECT count(*) AS n FROM raw_messages")[0]["n"] == 3
    assert query(dsn, "SELECT count(*) AS n FROM raw_messages WHERE raw IS NOT NULL")[0]["n"] == 2
    wait_until(
        lambda: all(
            "\\Seen" in standin.dovecot.flags(address)[uids[name]]
            for name in ("newsletter", "invoice", "bare", "logo")
        ),
        10,
        what="the post-action on all but the ad",
    )
    flags = standin.dovecot.flags(address)
    assert "\\Seen" not in flags[uids["ad"]]
    assert "\\Seen" in flags[uids["bare"]]
    status = requests.get(f"{services.auth_url}/status?lang=en", headers=ADMIN, timeout=10)
    assert "4 own, 1 tenant-wide; 3 skipped in 24 h" in status.text
    fetcher_metrics = f"{services.running['fetcher'].ops_url}/metrics"
    assert metric_value(fetcher_metrics, "bandeja_mails_skipped_total", {"stage": "headers"}) == 2

    # A rule change applies on the next run, no restart: with no rules, a newsletter is a
    # document; the ad skipped before stays skipped and unread (it is recognised, not re-read).
    assert _put_rules(services, mailbox_id, []).status_code == 200
    cleared = requests.put(
        f"{services.auth_url}/api/tenants/{tenant_id}/rules",
        json={"rules": []},
        headers=ADMIN,
        timeout=10,
    )
    assert cleared.status_code == 200
    standin.dovecot.append(address, _mail("boletin@noticias.example", address, "Newsletter 2", "."))
    erp_consumer.wait_for("bandeja.document.processed", 3, 40)
    time.sleep(2.5)  # another poll or two: the ad must still not be read
    assert query(dsn, "SELECT count(*) AS n FROM documents")[0]["n"] == 3
    assert query(dsn, "SELECT count(*) AS n FROM skipped_mails")[0]["n"] == 3

    assert all(code == 0 for code in services.stop().values())
    # The two skipped mails hold 3 MB of body; Dovecot sent a small fraction of that.
    sent = _bytes_sent_by_dovecot(standin, address)
    assert 0 < sent < BIG_BODY // 3, sent
