"""Peak memory of one processor process parsing large mails with eight threads, with and
without the parse budget (``BANDEJA_PROCESS_BYTES_IN_FLIGHT``).

    .venv/bin/python -m bench.parse_memory --pdf-bytes 26000000 --budget-mib 128
    .venv/bin/python -m bench.parse_memory --pdf-bytes 26000000 --budget-mib 0   # unbounded
    .venv/bin/python -m bench.parse_memory --xml-bytes 20971520 --mails 1 --budget-mib 0

``--xml-bytes``: mails with one XML attachment of that size (small elements, as many as
fit) instead of a PDF: the invoice extractors parse every XML attachment into a tree,
which costs more memory per byte than anything else in a mail. The line printed gives
the peak's growth as a multiple of the raw bytes in flight (the budget's unit).

The mails are stored in a fresh PostgreSQL database and processed by ``process_messages``
in this process (one mail per batch, eight at once: a processor pod's eight worker threads
on a backlog of large mail); RSS is sampled every 10 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import psycopg

from common.db import create_pool
from services.processor.budget import MemoryBudget
from services.processor.process import ProcessDeps, process_messages
from standin.samples import invoice_mail
from tests.security.hostile_issue14 import xml_attachment_mail
from tests.support.infra import TestDatabase

ADDRESS = "large@bench.example"


def _mail(n: int, pdf_bytes: int, xml_bytes: int) -> bytes:
    if xml_bytes:
        return xml_attachment_mail(ADDRESS, xml_bytes)
    return invoice_mail(n, to=ADDRESS, pdf_size=pdf_bytes)[0]


def _store(dsn: str, count: int, pdf_bytes: int, xml_bytes: int) -> tuple[list[int], int]:
    ids, size = [], 0
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO mailboxes (address, tenant_id) VALUES (%s, 't') RETURNING id", (ADDRESS,)
        ).fetchone()
        assert row is not None
        for n in range(count):
            raw = _mail(n, pdf_bytes, xml_bytes)
            size = len(raw)
            stored = conn.execute(
                "INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, sha256, size, raw)"
                " VALUES (%s, 'INBOX', 1, %s, %s, %s, %s) RETURNING id",
                (row[0], n + 1, hashlib.sha256(raw).hexdigest(), size, raw),
            ).fetchone()
            assert stored is not None
            ids.append(stored[0])
    return ids, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf-bytes", type=int, default=26_000_000)
    parser.add_argument("--xml-bytes", type=int, default=0, help="an XML attachment, not a PDF")
    parser.add_argument("--mails", type=int, default=8)
    parser.add_argument("--budget-mib", type=int, default=128, help="0: unbounded")
    args = parser.parse_args()
    db = TestDatabase().create()
    try:
        ids, size = _store(db.dsn, args.mails, args.pdf_bytes, args.xml_bytes)
        limit = args.budget_mib * 2**20 if args.budget_mib else 2**62
        pool = create_pool(db.dsn, name="bench-parse-memory", max_size=args.mails + 2)
        # Batches wait as long as they need here: what is measured is memory, and on a busy
        # machine the processor's 60 s wait (then a retry) would end the run instead.
        budget = MemoryBudget(limit, max_wait_seconds=3600)
        deps = ProcessDeps(pool=pool, max_message_bytes=2**62, budget=budget)
        process = psutil.Process()
        start_rss = peak = process.memory_info().rss
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.01):
                peak = max(peak, process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(8) as threads:
            outcomes = list(threads.map(lambda raw_id: process_messages(deps, [raw_id]), ids))
        seconds = time.monotonic() - started
        stop.set()
        sampler.join()
        pool.close()
        states = sorted({state for outcome in outcomes for state in outcome.values()})
        budget_text = f"{args.budget_mib} MiB" if args.budget_mib else "unbounded"
        # Unbounded, every mail is in flight at once (up to one per thread).
        in_flight = size * min(args.mails, 8)
        factor = (
            "" if args.budget_mib else f" ({(peak - start_rss) / in_flight:.1f}x the raw bytes)"
        )
        print(
            f"budget {budget_text}: {args.mails} mails of {size / 1e6:.1f} MB, 8 threads:"
            f" {seconds:.1f} s, RSS {start_rss / 2**20:.0f} -> peak {peak / 2**20:.0f} MiB"
            f"{factor}, documents {states}"
        )
    finally:
        db.drop()


if __name__ == "__main__":
    main()
