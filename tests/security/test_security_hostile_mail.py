"""Hostile mail through the whole system: Dovecot → fetcher → processor → CRM tables.

Each mail ends, in bounded time, as a ``failed`` or sanitised ``processed`` document, the
processor's memory stays bounded, and a normal mail sent afterwards is processed too.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Callable, Iterator

import psutil
import psycopg
import pytest

from common.message_ids import MAX_MESSAGE_ID_CHARS
from standin.exchange.server import ExchangeProxy
from standin.testing import StandIn
from tests.conftest import new_address
from tests.security.hostile import HOSTILE
from tests.security.hostile_issue14 import HOSTILE_DATA
from tests.support.events import EventConsumer
from tests.support.flows import connect_mailbox
from tests.support.mail import invoice_mail
from tests.support.services import Services
from tests.support.waiting import metric_value, query, wait_until

MAX_RSS = 500 * 1024 * 1024
EXPECTED_STATE = {  # by subject prefix
    "hostile: decompression": "processed",  # archives are stored, never decompressed
    "hostile: 10000 parts": "failed",
    "hostile: nested": "failed",
    "hostile: 1 MB": "processed",
    "hostile: NUL": "processed",
    "hostile: filenames": "processed",
}
SETTLED = ("bandeja.document.processed", "bandeja.document.failed")


def wait_for_documents(consumer: EventConsumer, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        consumer.drain()
        settled = [e for e in consumer.events if e["type"] in SETTLED]
        if len({e["id"] for e in settled}) >= count:
            return settled
        time.sleep(0.2)
    raise AssertionError(f"{count} documents not settled in {timeout}s: {consumer.events}")


class PeakRss:
    """Samples a process tree's resident memory every 50 ms."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                procs = [self._process, *self._process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _safe_name(name: str) -> bool:
    return (
        "/" not in name
        and "\\" not in name
        and ".." not in name
        and not name.startswith(".")
        and all(unicodedata.category(c) not in {"Cc", "Cf"} for c in name)
        and 0 < len(name.encode()) <= 255
    )


def test_hostile_mail_ends_as_bounded_documents_and_the_worker_keeps_serving(
    standin: StandIn, tenant: dict, services: Services, erp_consumer: EventConsumer
) -> None:
    """Decompression bombs (zip, gzip), 10,000 parts, 2,000 nested message/rfc822, a 1 MB
    header line, NUL bytes and path/control-character filenames each become a document
    (failed or sanitised); the processor stays under 500 MB; a normal mail after them is
    processed as usual."""
    address = new_address(tenant, "hostile")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    for build in HOSTILE.values():
        standin.dovecot.append(address, build(address))
    with PeakRss(services.running["processor"].process.pid) as rss:
        assert connect_mailbox(services.auth_url, standin, address).status_code == 200
        settled = wait_for_documents(erp_consumer, len(HOSTILE), timeout=90)
        standin.dovecot.append(address, invoice_mail(7, to=address)[0])
        wait_for_documents(erp_consumer, len(HOSTILE) + 1, timeout=60)
    assert len(settled) >= len(HOSTILE)
    assert rss.peak < MAX_RSS, f"processor peaked at {rss.peak / 2**20:.0f} MiB"

    with psycopg.connect(services.env["BANDEJA_DATABASE_URL"]) as conn:
        documents = conn.execute("SELECT id, subject, state, reason FROM documents").fetchall()
        files = conn.execute(
            "SELECT d.subject, f.filename, f.original_filename FROM document_files f"
            " JOIN documents d ON d.id = f.document_id"
        ).fetchall()
    states = {subject: state for _, subject, state, _ in documents}
    assert len(documents) == len(HOSTILE) + 1, documents
    for prefix, expected in EXPECTED_STATE.items():
        [subject] = [s for s in states if s and s.startswith(prefix)]
        assert states[subject] == expected, (prefix, documents)
    assert states["Factura electrónica N° 1007"] == "processed"

    for subject, filename, _ in files:
        assert _safe_name(filename), (subject, filename)
    originals = {orig for subject, _, orig in files if subject == "hostile: filenames"}
    assert "../../etc/passwd" in originals
    assert "bell\x07\x1b[31mred\x7f.pdf" in originals
    assert services.running["processor"].process.poll() is None


@pytest.fixture
def exchange(standin: StandIn) -> Iterator[ExchangeProxy]:
    with ExchangeProxy.for_standin(standin, tls=True) as proxy:
        yield proxy


def test_each_hostile_mail_is_its_own_failure_and_the_mailbox_keeps_flowing(
    standin: StandIn,
    tenant: dict,
    exchange: ExchangeProxy,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """Mails the database refuses (a 6 KB folded Message-ID, NUL in the Message-ID), S/MIME
    hiding a 310 KB Content-Type or 10,000 parts, HTML built to be quadratic, a 16 MB mail
    over the cap, and a server that leaves out RFC822.SIZE and once announces a literal of
    10^14 bytes: every mail becomes a document with a state and (unless processed) a reason
    within seconds, the normal mail sent after them too, the mailbox stays active and no
    process dies."""
    address = new_address(tenant, "hostile14")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    for build in HOSTILE_DATA.values():
        standin.dovecot.append(address, build(address))
    standin.dovecot.append(address, invoice_mail(8, to=address)[0])
    exchange.faults.hide_sizes(address)
    exchange.faults.oversized_literal(address)
    # A 4 MiB cap: the 16 MB mail, sizeless, must be found too large by reading it.
    cap = 4 * 1024 * 1024
    services = start_services(
        imap_port=str(exchange.port), idle_sessions="0", max_message_bytes=str(cap)
    )
    dsn = services.env["BANDEJA_DATABASE_URL"]

    started = time.monotonic()
    assert connect_mailbox(services.auth_url, standin, address).status_code == 200
    wait_for_documents(erp_consumer, len(HOSTILE_DATA) + 1, timeout=60)
    seconds = time.monotonic() - started

    documents = {
        d["subject"]: d
        for d in query(dsn, "SELECT subject, state, reason, message_id FROM documents")
    }
    assert len(documents) == len(HOSTILE_DATA) + 1, documents
    for subject in HOSTILE_DATA:
        assert documents[subject]["state"] in {"processed", "failed", "too_large"}, subject
        if documents[subject]["state"] != "processed":
            assert documents[subject]["reason"], documents[subject]
    # No RFC822.SIZE did not make it a 0-byte mail: it was read in chunks up to the cap.
    assert documents["hostile: 990 long Content-Types"]["state"] == "too_large"
    assert f"{cap}-byte cap" in documents["hostile: 990 long Content-Types"]["reason"]
    assert documents["hostile: S/MIME 10000 parts"]["state"] == "failed"
    assert "MIME parts" in documents["hostile: S/MIME 10000 parts"]["reason"]
    for subject in ("hostile: long Message-ID", "hostile: NUL in Message-ID"):
        assert documents[subject]["state"] == "processed"
        assert "\x00" not in documents[subject]["message_id"]
        assert len(documents[subject]["message_id"]) <= MAX_MESSAGE_ID_CHARS
    assert documents["Factura electrónica N° 1008"]["state"] == "processed"
    assert seconds < 45, f"documents took {seconds:.0f} s"

    fetcher = services.running["fetcher"]
    protocol_errors = metric_value(
        f"{fetcher.ops_url}/metrics", "bandeja_imap_errors_total", {"kind": "protocol"}
    )
    assert protocol_errors >= 1  # the announced literal ended a session, and was retried
    mailbox = wait_until(
        lambda: query(dsn, "SELECT state, last_error FROM mailboxes WHERE last_error IS NULL"),
        30,
        what="a clean fetch run after the protocol error",
    )
    assert mailbox == [{"state": "active", "last_error": None}]
    assert all(p.process.poll() is None for p in services.running.values())
    codes = services.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"
