"""Hostile mail through the whole system: Dovecot → fetcher → processor → CRM tables.

Each mail ends, in bounded time, as a ``failed`` or sanitised ``processed`` document, the
processor's memory stays bounded, and a normal mail sent afterwards is processed too.
"""

from __future__ import annotations

import threading
import time
import unicodedata

import psutil
import psycopg

from standin.testing import StandIn
from tests.conftest import new_address
from tests.security.hostile import HOSTILE
from tests.support.events import EventConsumer
from tests.support.flows import connect_mailbox
from tests.support.mail import invoice_mail
from tests.support.services import Services

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
