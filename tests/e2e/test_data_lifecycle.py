"""The data lifecycle through Dovecot, the stand-in and the four services (issue 20):
retention deletes only what has aged, and a purge leaves nothing of a mailbox behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import psycopg
import requests

from standin.testing import StandIn
from tests.security.hostile import many_parts_mail
from tests.security.test_security_secrets import dump_database
from tests.support.events import EventConsumer
from tests.support.flows import connect_new_mailbox, mint_connect_link, start_sign_in
from tests.support.services import ADMIN_TOKEN, Services
from tests.support.waiting import metric_value, query, wait_until


def _mail(to: str, subject: str, marker: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Proveedora <ventas@proveedora.example>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="proveedora.example")
    msg.set_content(f"Presupuesto adjunto. {marker}\n")
    msg.add_attachment(
        f"%PDF-1.4 presupuesto {marker}".encode(),
        maintype="application",
        subtype="pdf",
        filename=f"presupuesto-{marker or 'x'}.pdf",
    )
    return msg.as_bytes()


def _stored_id(dsn: str, subject: str) -> int:
    """The stored mail with this subject (read from its raw bytes, still all there)."""
    rows = query(
        dsn,
        "SELECT id FROM raw_messages WHERE position(convert_to(%s, 'UTF8') IN raw) > 0",
        f"Subject: {subject}",
    )
    assert len(rows) == 1, rows
    return int(rows[0]["id"])


def _stored(dsn: str) -> dict[int, dict]:
    return {
        r["id"]: r
        for r in query(
            dsn,
            "SELECT r.id, r.raw IS NOT NULL AS has_raw, r.headers IS NOT NULL AS has_headers,"
            " r.raw_deleted_at IS NOT NULL AS deleted, d.state FROM raw_messages r"
            " LEFT JOIN documents d ON d.raw_message_id = r.id",
        )
    }


def test_retention_deletes_only_the_raw_mail_and_failed_documents_that_aged(
    standin: StandIn,
    tenant: dict,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """With a 7-day retention, four mails: one processed 8 days ago (its bytes go, its
    document stays), one fetched 8 days ago but processed now (untouched), a failed one
    8 days old (bytes and failed document go) and one fetched 8 days ago that has no
    document yet, the processor being down (kept whole: nothing lost). The relay's metrics
    count what went and what waits; the aged mail marked unread again is not imported a
    second time."""
    services = start_services(poll_interval="1", raw_retention_days="7", retention_interval="1")
    dsn = services.env["BANDEJA_DATABASE_URL"]
    address = connect_new_mailbox(standin, services.auth_url, tenant, "retencion")
    aged_uid = standin.dovecot.append(address, _mail(address, "Presupuesto antiguo"))
    standin.dovecot.append(address, _mail(address, "Presupuesto reciente"))
    standin.dovecot.append(address, many_parts_mail(address))  # a failed document
    erp_consumer.wait_for("bandeja.document.processed", 2, timeout=60)
    erp_consumer.wait_for("bandeja.document.failed", 1, timeout=60)

    services.running["processor"].stop()
    standin.dovecot.append(address, _mail(address, "Presupuesto pendiente"))
    wait_until(
        lambda: len(query(dsn, "SELECT id FROM raw_messages")) == 4, 30, what="the 4th stored mail"
    )
    aged = _stored_id(dsn, "Presupuesto antiguo")
    fresh = _stored_id(dsn, "Presupuesto reciente")
    failed = _stored_id(dsn, "hostile: 10000 parts")
    waiting = _stored_id(dsn, "Presupuesto pendiente")
    assert (_stored(dsn)[failed]["state"], _stored(dsn)[waiting]["state"]) == ("failed", None)
    old_ids = [aged, failed, waiting]
    with psycopg.connect(dsn) as conn:  # one transaction: both ages change at once
        # The recent one was fetched long ago too, but processed just now (it waited for a
        # reprocess, say): the retention counts from its document.
        conn.execute(
            "UPDATE raw_messages SET fetched_at = now() - interval '8 days' WHERE id = ANY(%s)",
            ([*old_ids, fresh],),
        )
        conn.execute(
            "UPDATE documents SET created_at = now() - interval '8 days'"
            " WHERE raw_message_id = ANY(%s)",
            (old_ids,),
        )

    relay = services.running["relay"].ops_url + "/metrics"
    wait_until(
        lambda: metric_value(relay, "bandeja_retention_deleted_total", {"kind": "raw_mail"}) == 2,
        20,
        what="the sweeper to delete both aged mails",
    )
    rows = _stored(dsn)
    assert rows[aged] == {
        "id": aged,
        "has_raw": False,
        "has_headers": False,
        "deleted": True,
        "state": "processed",
    }
    assert rows[failed] == {
        "id": failed,
        "has_raw": False,
        "has_headers": False,
        "deleted": True,
        "state": None,
    }
    assert rows[fresh]["has_raw"]
    assert not rows[fresh]["deleted"]
    assert rows[waiting]["has_raw"]
    assert not rows[waiting]["deleted"]
    assert metric_value(relay, "bandeja_retention_deleted_total", {"kind": "failed_document"}) == 1
    wait_until(
        lambda: metric_value(relay, "bandeja_retention_kept_without_document") == 1,
        10,
        what="the backlog gauges of a finished sweep",
    )
    assert metric_value(relay, "bandeja_retention_due") == 0

    # The aged mail's row is a tombstone the fetch still recognises: marked unread again,
    # it is not stored or turned into a document a second time.
    with standin.dovecot.admin_session(address) as imap:
        imap.select_folder("INBOX")
        imap.remove_flags([aged_uid], [b"\\Seen"])
    before = query(dsn, "SELECT last_fetch_at FROM mailboxes")[0]["last_fetch_at"]
    wait_until(
        lambda: query(dsn, "SELECT last_fetch_at FROM mailboxes")[0]["last_fetch_at"] > before,
        20,
        what="a fetch after the mail was marked unread",
    )
    assert len(query(dsn, "SELECT id FROM raw_messages")) == 4
    assert len(query(dsn, "SELECT id FROM documents")) == 2


def _purge_cli(env: dict[str, str], address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services", "purge", "--mailbox", address],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_purge_leaves_nothing_of_the_mailbox_and_tells_the_erp_by_id(
    standin: StandIn,
    tenant: dict,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """`bandeja purge --mailbox ADDRESS` on a mailbox with processed and failed mail, a
    sign-in in flight and an unused connect link: a dump of every table holds neither its
    address nor a word of its mail afterwards, another mailbox is untouched, and the ERP gets one
    `bandeja.mailbox.purged` carrying ids only. The admin API route does the same for the
    other mailbox; both refuse what is already gone."""
    services = start_services(poll_interval="1")
    dsn = services.env["BANDEJA_DATABASE_URL"]
    marker = f"zq{uuid.uuid4().hex[:12]}"
    victim = connect_new_mailbox(standin, services.auth_url, tenant, "borrar")
    keeper = connect_new_mailbox(standin, services.auth_url, tenant, "conservar")
    standin.dovecot.append(victim, _mail(victim, f"Presupuesto {marker}", marker))
    standin.dovecot.append(victim, many_parts_mail(victim))
    standin.dovecot.append(keeper, _mail(keeper, "Presupuesto conservado", "keep"))
    erp_consumer.wait_for("bandeja.document.processed", 2, timeout=60)
    erp_consumer.wait_for("bandeja.document.failed", 1, timeout=60)
    start_sign_in(services.auth_url, victim)  # a flow in flight holds the address too
    mint_connect_link(services.auth_url, victim, f"erp-{marker}")  # and an unused link
    ids = {m["address"]: m["id"] for m in services.admin_get("/api/mailboxes").json()}
    before = dump_database(dsn)
    assert victim in before
    assert marker in before

    done = _purge_cli(services.env, victim)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["mailbox_id"] == ids[victim]
    assert (summary["raw_mails"], summary["documents"]) == (2, 2)

    purged = erp_consumer.wait_for("bandeja.mailbox.purged", 1, timeout=30)
    assert [e["data"]["mailbox_id"] for e in purged] == [ids[victim]]
    assert victim not in json.dumps(purged)
    time.sleep(2)  # let the fetcher's and refresher's loops meet the vanished mailbox
    after = dump_database(dsn)
    for trace in (victim, marker, marker.encode().hex()):
        assert trace not in after, trace
    assert keeper in after
    assert [
        r["event_type"]
        for r in query(
            dsn,
            "SELECT event_type FROM outbox WHERE event->'data'->>'mailbox_id' = %s",
            str(ids[victim]),
        )
    ] == ["bandeja.mailbox.purged"]

    again = _purge_cli(services.env, victim)
    assert again.returncode == 1
    assert "holds nothing" in again.stderr

    url = f"{services.auth_url}/api/mailboxes/{ids[keeper]}/purge"
    assert requests.post(url, timeout=10).status_code == 401
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = requests.post(url, headers=bearer, timeout=30)
    assert response.status_code == 200
    assert response.json()["documents"] == 1
    assert requests.post(url, headers=bearer, timeout=30).status_code == 404
    erp_consumer.wait_for("bandeja.mailbox.purged", 2, timeout=30)
    final = dump_database(dsn)
    assert keeper not in final
    assert victim not in final
    assert all(p.process.poll() is None for p in services.running.values())
