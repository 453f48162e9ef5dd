"""The fetcher against the real Dovecot, as processes (issue 4)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import make_msgid

import psutil
import requests

from standin.testing import StandIn
from tests.support.events import EventConsumer
from tests.support.flows import connect_new_mailbox
from tests.support.mail import invoice_mail
from tests.support.services import ADMIN_TOKEN, ServiceProcess, Services, free_port
from tests.support.waiting import metric_value, query, wait_until


def _connect(standin: StandIn, services: Services, tenant: dict, name: str) -> str:
    return connect_new_mailbox(standin, services.auth_url, tenant, name)


def _mailbox_id(services: Services, address: str) -> int:
    listing = services.admin_get("/api/mailboxes").json()
    return int(next(m["id"] for m in listing if m["address"] == address))


def _documents(dsn: str) -> list[dict]:
    return query(dsn, "SELECT message_id, state, reason FROM documents")


def _big_mail(to: str, size: int) -> tuple[bytes, str]:
    """A mail of about ``size`` bytes on the wire (base64 adds a third to the blob)."""
    msg = EmailMessage()
    msg["From"] = "scanner@proveedora.example"
    msg["To"] = to
    msg["Subject"] = f"Escaneo de {size // 1_000_000} MB"
    msg["Message-ID"] = make_msgid(domain="proveedora.example")
    msg.set_content("Adjunto el escaneo.")
    blob = hashlib.sha256(b"seed").digest() * (size * 3 // 4 // 32)
    msg.add_attachment(blob, maintype="application", subtype="pdf", filename="escaneo.pdf")
    return msg.as_bytes(), hashlib.sha256(blob).hexdigest()


def test_fifty_mailboxes_drained_in_parallel_each_mail_stored_once(
    standin: StandIn, tenant: dict, start_services: Callable[..., Services]
) -> None:
    """50 mailboxes x 4 mails: 200 documents, no duplicate, everything \\Seen."""
    services = start_services(idle_sessions="0")
    with ThreadPoolExecutor(8) as pool:
        addresses = list(
            pool.map(lambda i: _connect(standin, services, tenant, f"par{i}"), range(50))
        )
    message_ids = set()
    for address in addresses:
        raws = [invoice_mail(n, to=address)[0] for n in range(4)]
        standin.dovecot.append_many(address, raws)
        message_ids.update(str(message_from_bytes(raw)["Message-ID"]).strip() for raw in raws)
    dsn = services.env["BANDEJA_DATABASE_URL"]
    wait_until(lambda: len(_documents(dsn)) >= 200, 120, what="200 documents")
    time.sleep(2)
    docs = _documents(dsn)
    assert len(docs) == 200
    assert {d["message_id"] for d in docs} == message_ids
    assert all(standin.dovecot.unseen_uids(a) == [] for a in addresses)


def test_fetcher_killed_mid_batch_loses_and_duplicates_nothing(
    standin: StandIn, tenant: dict, start_services: Callable[..., Services]
) -> None:
    """SIGKILL the fetcher while it stores a batch; after a restart every mail is one
    document and every mail is \\Seen."""
    services = start_services(idle_sessions="0", fetch_batch_size="10")
    services.running["fetcher"].stop()
    address = _connect(standin, services, tenant, "killed")
    total = 300
    standin.dovecot.append_many(
        address, (invoice_mail(n, to=address, pdf_size=20_000)[0] for n in range(total))
    )
    dsn = services.env["BANDEJA_DATABASE_URL"]
    env = services.env

    def stored() -> int:
        return len(query(dsn, "SELECT id FROM raw_messages"))

    for _ in range(3):
        fetcher = ServiceProcess("fetcher", env, services.log_dir, free_port())
        try:
            fetcher.wait_ready()
            before = stored()
            # Killed as soon as a few batches are in, wherever it is; a fast fetcher may
            # have stored everything by then, which ends the killing early.
            wait_until(
                lambda b=before: stored() >= min(b + 40, total),
                60,
                interval=0.05,
                what="a few batches",
            )
        finally:
            fetcher.stop(signal.SIGKILL)
        if stored() >= total:
            break
    fetcher = ServiceProcess("fetcher", env, services.log_dir, free_port())
    try:
        fetcher.wait_ready()
        wait_until(lambda: len(_documents(dsn)) >= total, 120, what="all documents")
        time.sleep(3)
        docs = _documents(dsn)
        assert len(docs) == total
        assert len({d["message_id"] for d in docs}) == total
        assert standin.dovecot.unseen_uids(address) == []
    finally:
        fetcher.stop()


def test_uidvalidity_reset_refetches_nothing_twice(
    standin: StandIn, tenant: dict, start_services: Callable[..., Services]
) -> None:
    """The server renumbers the folder (new UIDVALIDITY, mail unread again): known mail is
    recognised by Message-ID and hash, and only the genuinely new mail becomes a document."""
    services = start_services(idle_sessions="0")
    address = _connect(standin, services, tenant, "uidv")
    for n in range(3):
        standin.dovecot.append(address, invoice_mail(n, to=address)[0])
    dsn = services.env["BANDEJA_DATABASE_URL"]
    wait_until(lambda: len(_documents(dsn)) == 3, 40, what="3 documents")
    with standin.dovecot.admin_session(address) as imap:
        imap.select_folder("INBOX")
        uids = imap.search(["ALL"])
        imap.remove_flags(uids, [b"\\Seen"])
    doveadm = ["doveadm", "-c", str(standin.dovecot.config_path)]
    subprocess.run(
        [*doveadm, "mailbox", "update", "-u", address, "--uid-validity", "777", "INBOX"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    standin.dovecot.append(address, invoice_mail(99, to=address)[0])
    wait_until(lambda: len(_documents(dsn)) >= 4, 40, what="the new mail")
    wait_until(lambda: standin.dovecot.unseen_uids(address) == [], 20, what="all seen")
    assert len(_documents(dsn)) == 4
    positions = query(dsn, "SELECT uidvalidity FROM folder_state")
    assert [p["uidvalidity"] for p in positions] == [777]


def _oauth_sessions(standin: StandIn, address: str) -> list[str]:
    """Dovecot's session ids of the XOAUTH2/OAUTHBEARER logins of ``address`` (the
    stand-in's own admin sessions log in with a master password, method PLAIN)."""
    log = standin.dovecot.log_path.read_text(errors="replace")
    return [
        line.rsplit("session=<", 1)[1].split(">", 1)[0]
        for line in log.splitlines()
        if f"Login: user=<{address}>" in line and ("XOAUTH2" in line or "OAUTHBEARER" in line)
    ]


def _logged_out(standin: StandIn, session: str) -> bool:
    log = standin.dovecot.log_path.read_text(errors="replace")
    return any(f"<{session}>" in line and "Logged out" in line for line in log.splitlines())


def test_polls_reuse_one_logged_in_session(
    standin: StandIn, tenant: dict, start_services: Callable[..., Services]
) -> None:
    """Successive polls of a mailbox reuse its logged-in IMAP session, as Exchange prefers
    (docs/architecture.md#exo-limits): the server sees one login for many fetch runs, and mail still
    arrives; at shutdown the session is logged out."""
    services = start_services(idle_sessions="0", poll_interval="1", imap_parked_sessions="100")
    address = _connect(standin, services, tenant, "reuser")
    dsn = services.env["BANDEJA_DATABASE_URL"]
    for n in range(3):
        standin.dovecot.append(address, invoice_mail(n, to=address)[0])
        wait_until(lambda n=n: len(_documents(dsn)) == n + 1, 30, what=f"{n + 1} documents")
    fetcher = services.running["fetcher"]
    metrics_url = f"{fetcher.ops_url}/metrics"
    wait_until(
        lambda: metric_value(metrics_url, "bandeja_fetch_runs_total", {"result": "ok"}) >= 6,
        30,
        what="six fetch runs",
    )
    [session] = _oauth_sessions(standin, address)
    assert metric_value(metrics_url, "bandeja_imap_session_reuse_total", {"result": "reused"}) >= 5
    assert not _logged_out(standin, session)
    assert fetcher.stop() == 0
    wait_until(lambda: _logged_out(standin, session), 10, what="the parked session logged out")


def test_move_to_folder_post_action(
    standin: StandIn, tenant: dict, start_services: Callable[..., Services]
) -> None:
    """A mailbox configured to move processed mail leaves INBOX empty and the mail in
    the target folder."""
    services = start_services(idle_sessions="0")
    address = _connect(standin, services, tenant, "mover")
    with standin.dovecot.admin_session(address) as imap:
        imap.create_folder("Procesado")
    answer = requests.patch(
        f"{services.auth_url}/api/mailboxes/{_mailbox_id(services, address)}",
        json={"post_action": "move", "move_to_folder": "Procesado"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    dsn = services.env["BANDEJA_DATABASE_URL"]
    configured = query(dsn, "SELECT post_action, move_to_folder FROM mailboxes")
    assert configured == [{"post_action": "move", "move_to_folder": "Procesado"}]
    for n in range(3):  # over several fetch runs
        standin.dovecot.append(address, invoice_mail(n, to=address)[0])
        time.sleep(1.5)
    wait_until(lambda: len(_documents(dsn)) == 3, 40, what="3 documents")
    with standin.dovecot.admin_session(address) as imap:
        wait_until(lambda: imap.select_folder("INBOX")[b"EXISTS"] == 0, 20, what="INBOX empty")
        assert imap.select_folder("Procesado")[b"EXISTS"] == 3


def test_idle_delivers_new_mail_within_two_seconds(
    standin: StandIn,
    tenant: dict,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """With IDLE, a mail appended to the mailbox is a CRM document and an event in < 2 s,
    although the poll interval is a minute."""
    services = start_services(poll_interval="60")
    address = _connect(standin, services, tenant, "push")
    fetcher = services.running["fetcher"]
    wait_until(
        lambda: metric_value(f"{fetcher.ops_url}/metrics", "bandeja_idle_sessions") >= 1,
        30,
        what="an IDLE session",
    )
    time.sleep(1.5)  # the session's first look at the folder is over
    latencies = []
    for n in range(3):
        started = time.monotonic()
        standin.dovecot.append(address, invoice_mail(n, to=address)[0])
        erp_consumer.wait_for("bandeja.document.processed", n + 1, timeout=10)
        latencies.append(time.monotonic() - started)
    assert max(latencies) < 2.0, latencies


def test_forty_megabyte_mail_is_fetched_with_bounded_memory(
    standin: StandIn, tenant: dict, start_services: Callable[..., Services]
) -> None:
    """A 40 MB mail is stored in chunks: the fetcher's peak RSS stays well under three
    times the message size, and the document's attachment hash matches."""
    services = start_services(idle_sessions="0")
    address = _connect(standin, services, tenant, "big")
    fetcher = psutil.Process(services.running["fetcher"].process.pid)
    raw, digest = _big_mail(address, 40_000_000)
    assert 39_000_000 < len(raw) < 42_000_000
    standin.dovecot.append(address, raw)
    del raw
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, fetcher.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    dsn = services.env["BANDEJA_DATABASE_URL"]
    try:
        wait_until(lambda: _documents(dsn), 120, what="the big document")
    finally:
        stop.set()
        sampler.join()
    assert peak < 3 * 40_000_000, f"fetcher peak RSS {peak / 1e6:.0f} MB"
    files = query(dsn, "SELECT sha256 FROM document_files WHERE filename = 'escaneo.pdf'")
    assert [f["sha256"] for f in files] == [digest]


def test_mail_over_the_cap_is_recorded_as_too_large(
    standin: StandIn,
    tenant: dict,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """A mail above BANDEJA_MAX_MESSAGE_BYTES becomes a ``too_large`` document with its
    headers, and the ERP hears about it; it is never skipped silently."""
    services = start_services(idle_sessions="0", max_message_bytes="1000000")
    address = _connect(standin, services, tenant, "cap")
    raw, _ = _big_mail(address, 2_000_000)
    standin.dovecot.append(address, raw)
    event = erp_consumer.wait_for("bandeja.document.failed", 1, timeout=40)[0]
    assert event["data"]["state"] == "too_large"
    assert event["data"]["subject"] == "Escaneo de 2 MB"
    docs = _documents(services.env["BANDEJA_DATABASE_URL"])
    assert [d["state"] for d in docs] == ["too_large"]
    assert "exceeds" in docs[0]["reason"]
    assert standin.dovecot.unseen_uids(address) == []
