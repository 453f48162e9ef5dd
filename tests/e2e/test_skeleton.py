"""One mailbox, from Microsoft sign-in to CRM documents and ERP events (issue 2)."""

from __future__ import annotations

import hashlib

import psycopg

from standin.testing import StandIn
from tests.conftest import new_address
from tests.support.events import EventConsumer
from tests.support.flows import connect_mailbox
from tests.support.mail import append_invoices
from tests.support.services import Services

N_MAILS = 5


def test_seeded_mails_become_documents_and_events(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """N unread mails in Dovecot → N CRM documents with matching attachment hashes,
    N ``document.processed`` events for the ERP, and the mails marked \\Seen."""
    address = new_address(tenant, "facturas")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    expected = append_invoices(standin, address, N_MAILS)

    page = connect_mailbox(services.auth_url, standin, address)
    assert page.status_code == 200, page.text
    assert "Buzón conectado" in page.text

    connected = erp_consumer.wait_for("bandeja.mailbox.connected", 1, timeout=30)
    assert connected[0]["data"]["mailbox"] == address
    processed = erp_consumer.wait_for("bandeja.document.processed", N_MAILS, timeout=60)

    by_subject = {e["data"]["subject"]: e for e in processed}
    assert set(by_subject) == set(expected)
    for subject, hashes in expected.items():
        event = by_subject[subject]
        assert event["data"]["mailbox"] == address
        assert event["data"]["tenant_id"] == tenant["id"]
        assert {a["filename"]: a["sha256"] for a in event["data"]["attachments"]} == hashes

    with psycopg.connect(services.env["BANDEJA_DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT d.subject, f.filename, f.sha256, f.content, f.size FROM documents d"
            " JOIN document_files f ON f.document_id = d.id WHERE d.state = 'processed'"
        ).fetchall()
    stored = {
        (subject, name): (sha, bytes(content), size) for subject, name, sha, content, size in rows
    }
    assert len(stored) == 2 * N_MAILS
    for subject, hashes in expected.items():
        for name, sha in hashes.items():
            digest, content, size = stored[(subject, name)]
            assert digest == sha == hashlib.sha256(content).hexdigest()
            assert size == len(content)

    assert standin.dovecot.unseen_uids(address) == []

    listing = services.admin_get("/api/mailboxes").json()
    assert [m["state"] for m in listing if m["address"] == address] == ["active"]


def test_admin_api_refuses_requests_without_the_admin_token(services: Services) -> None:
    """/api/mailboxes answers 401 without the bearer token, and with a wrong one."""
    import requests

    assert requests.get(f"{services.auth_url}/api/mailboxes", timeout=5).status_code == 401
    wrong = requests.get(
        f"{services.auth_url}/api/mailboxes", timeout=5, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
